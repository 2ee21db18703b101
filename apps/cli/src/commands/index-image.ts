// `clip index <source> -o <file.clip>`: index an OCI image into a .clip archive.
// (The file is not called index.ts: that name is the command registry.)
import type { Command } from 'commander';
import type { IndexProgress, IndexSummary } from '@clip/indexer';
import { createLogger, formatSize, parseSize, UsageError, parsePlatform } from '@clip/shared';
import { HOSTS_DIR_HELP, hostsDirOption } from '../hosts-option.js';

interface IndexOptions {
  output: string;
  storageRef?: string;
  platform?: string;
  spanSize: string;
  concurrency?: string;
  insecure?: boolean;
  json?: boolean;
  progress?: boolean;
  reuse?: boolean;
  hostsDir?: string;
}

const BAR_WIDTH = 24;
/** Redraws of the TTY progress line per second, at most. */
const REDRAWS_PER_SECOND = 10;

/** Progress on stderr: one redrawn bar on a terminal, a plain line per finished layer otherwise. */
export function progressReporter(
  stream: NodeJS.WriteStream,
  now: () => number = () => performance.now(),
): {
  update: (progress: IndexProgress) => void;
  finish: () => void;
} {
  const started = now();
  let lastDraw = -Infinity;
  let lastLayers = -1;
  let drawn = false;
  const line = (p: IndexProgress) => {
    const seconds = Math.max((now() - started) / 1000, 0.001);
    const rate = `${formatSize(p.bytesRead / seconds)}/s`;
    return { seconds, text: `${p.layersDone}/${p.layersTotal} layers  ${formatSize(p.bytesRead)} / ${formatSize(p.bytesTotal)}  ${rate}` };
  };
  if (stream.isTTY) {
    return {
      update(p) {
        const t = now();
        if (t - lastDraw < 1000 / REDRAWS_PER_SECOND && p.layersDone !== p.layersTotal) return;
        lastDraw = t;
        const fraction = p.bytesTotal > 0 ? Math.min(1, p.bytesRead / p.bytesTotal) : p.layersTotal > 0 ? p.layersDone / p.layersTotal : 1;
        const filled = Math.round(fraction * BAR_WIDTH);
        stream.write(`\r\x1b[2Kindexing [${'#'.repeat(filled)}${'-'.repeat(BAR_WIDTH - filled)}] ${line(p).text}`);
        drawn = true;
      },
      finish() {
        if (drawn) stream.write('\n');
      },
    };
  }
  return {
    update(p) {
      if (p.layersDone === lastLayers) return;
      lastLayers = p.layersDone;
      stream.write(`indexing: ${line(p).text}\n`);
    },
    finish() {},
  };
}

export function formatSummary(summary: IndexSummary): string {
  return (
    `wrote ${summary.output}: ${summary.files} files, ${summary.directories} directories, ` +
    `${summary.layers} layers, ${summary.checkpoints} checkpoints, archive ${formatSize(summary.archiveBytes)}; ` +
    `read ${formatSize(summary.bytesRead)} (${formatSize(summary.networkBytes)} over the network) in ${summary.seconds.toFixed(1)} s\n`
  );
}

export function register(program: Command): void {
  program
    .command('index')
    .description('index an OCI image (oci:<dir>[:tag], oci-archive:<file>[:tag] or a registry reference) into a .clip archive')
    .argument('<source>', 'image to index')
    .requiredOption('-o, --output <file.clip>', 'archive to write (atomically)')
    .option('--storage-ref <ref>', 'registry reference the runtime fetches layers from (required for local layouts)')
    .option('--platform <os/arch[/variant]>', 'platform to pick from an image index (default: this machine)')
    .option('--span-size <size>', 'uncompressed bytes between decompression checkpoints', '1MiB')
    .option('--concurrency <n>', 'layers scanned at once (default: number of CPUs)')
    .option('--insecure', 'allow plain HTTP / unverified TLS to a non-loopback registry')
    .option('--json', 'print the summary as JSON on stdout')
    .option('--hosts-dir <dir>', HOSTS_DIR_HELP)
    .option('--no-progress', 'no progress output on stderr')
    .option('--reuse', 'registry source with a published archive (clip publish): download that instead of indexing')
    .action(async (source: string, options: IndexOptions) => {
      // Loaded here, not at startup: other commands (and --help) should not pay for them.
      const { reusePublishedArchive } = await import('@clip/registry-fetch');
      const platform = options.platform !== undefined ? { platform: parsePlatform(options.platform) } : {};
      const reused = await reusePublishedArchive(source, {
        output: options.output,
        reuse: options.reuse ?? false,
        logger: createLogger(),
        insecure: options.insecure ?? false,
        ...platform,
        ...hostsDirOption(options),
      });
      if (reused)
        return void process.stdout.write(
          options.json
            ? `${JSON.stringify({ reused: true, ...reused })}\n`
            : `reused the published archive of ${reused.reference}: ${options.output}\n`,
        );
      const spanSize = parseSize(options.spanSize);
      const concurrency = options.concurrency === undefined ? undefined : Number(options.concurrency);
      if (concurrency !== undefined && !(Number.isInteger(concurrency) && concurrency > 0)) {
        throw new UsageError(`invalid --concurrency ${JSON.stringify(options.concurrency)}: expected a positive integer`);
      }
      const { createArchive } = await import('@clip/indexer');
      const progress = options.progress === false ? undefined : progressReporter(process.stderr);
      try {
        const summary = await createArchive({
          source,
          output: options.output,
          spanSize,
          logger: createLogger(),
          ...(options.storageRef !== undefined ? { storageRef: options.storageRef } : {}),
          ...(options.platform !== undefined ? { platform: parsePlatform(options.platform) } : {}),
          ...(concurrency !== undefined ? { concurrency } : {}),
          ...(options.insecure ? { insecure: true } : {}),
          ...hostsDirOption(options),
          ...(progress ? { onProgress: progress.update } : {}),
        });
        progress?.finish();
        process.stdout.write(options.json ? `${JSON.stringify(summary)}\n` : formatSummary(summary));
      } catch (error) {
        progress?.finish();
        throw error;
      }
    });
}
