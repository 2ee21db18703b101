// `clip push <source> <registry/repo:tag> [--json]`: copy an image (all platforms) from an
// OCI layout, oci-archive or registry into a registry. Blobs already there are skipped; on the
// same registry they are mounted across repositories instead of uploaded.
import type { Command } from 'commander';
import { createLogger, formatSize, parseRegistryReference, UsageError } from '@clip/shared';
import type { PushProgress } from '@clip/registry-fetch';

interface PushCommandOptions {
  json?: boolean;
  concurrency: string;
  insecure?: boolean;
  srcInsecure?: boolean;
}

function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?';
  if (seconds < 60) return `${Math.ceil(seconds)}s`;
  return `${Math.floor(seconds / 60)}m${String(Math.ceil(seconds % 60)).padStart(2, '0')}s`;
}

/** A one-line live display on a terminal; plain lines per finished blob otherwise. */
function progressPrinter(stream: NodeJS.WriteStream): { update: (progress: PushProgress) => void; finish: () => void } {
  const started = Date.now();
  let lastDraw = 0;
  let drawn = false;
  const short = (digest: string | undefined) => (digest ? digest.slice(0, 19) : '');
  if (stream.isTTY) {
    const draw = (progress: PushProgress) => {
      const seconds = (Date.now() - started) / 1000;
      const rate = seconds > 0 ? progress.bytesUploaded / seconds : 0;
      const remaining = progress.bytesTotal - progress.bytesDone;
      const eta = rate > 0 ? formatDuration(remaining / rate) : '?';
      const line =
        `pushing ${formatSize(progress.bytesDone)} / ${formatSize(progress.bytesTotal)}  ` +
        `${formatSize(rate)}/s  ETA ${eta}  blobs ${progress.blobsDone}/${progress.blobsTotal}`;
      stream.write(`\r\x1b[2K${line}`);
      drawn = true;
    };
    return {
      update(progress) {
        const now = Date.now();
        if (progress.event === 'bytes' && now - lastDraw < 100) return;
        lastDraw = now;
        draw(progress);
      },
      finish() {
        if (drawn) stream.write('\n');
      },
    };
  }
  return {
    update(progress) {
      const done = `[${progress.blobsDone}/${progress.blobsTotal}]`;
      switch (progress.event) {
        case 'blob-uploaded':
          stream.write(`${done} uploaded ${short(progress.digest)}\n`);
          break;
        case 'blob-exists':
          stream.write(`${done} exists   ${short(progress.digest)}\n`);
          break;
        case 'blob-mounted':
          stream.write(`${done} mounted  ${short(progress.digest)}\n`);
          break;
        case 'manifest':
          stream.write(`manifest ${progress.digest}\n`);
          break;
        default:
          break;
      }
    },
    finish() {},
  };
}

export function register(program: Command): void {
  program
    .command('push')
    .description('copy an image (every platform) into a registry, skipping blobs it already has')
    .argument('<source>', 'oci:<dir>[:<tag>], oci-archive:<file>[:<tag>] or a registry reference')
    .argument('<target>', 'registry reference to push to, e.g. 127.0.0.1:5000/app:v1')
    .option('--json', 'print the result as JSON on stdout')
    .option('--concurrency <n>', 'blobs uploaded at once', '3')
    .option('--insecure', 'target: skip TLS verification / allow plain HTTP (loopback registries are always plain HTTP)')
    .option('--src-insecure', 'source registry: skip TLS verification / allow plain HTTP')
    .addHelpText(
      'after',
      '\nCredentials come from CLIP_REGISTRY_USERNAME/CLIP_REGISTRY_PASSWORD or the docker config\n' +
        '($DOCKER_CONFIG/config.json or ~/.docker/config.json, including credential helpers).',
    )
    .action(async (sourceText: string, targetText: string, options: PushCommandOptions) => {
      const concurrency = Number(options.concurrency);
      if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 32) {
        throw new UsageError(`--concurrency must be an integer from 1 to 32, got ${JSON.stringify(options.concurrency)}`);
      }
      const target = parseRegistryReference(targetText);
      const { openImageSource, pushImage } = await import('@clip/registry-fetch');
      const logger = createLogger();
      const source = await openImageSource(sourceText, { logger, ...(options.srcInsecure ? { insecure: true } : {}) });
      const printer = progressPrinter(process.stderr);
      try {
        const result = await pushImage(source, target, {
          logger,
          concurrency,
          ...(options.insecure ? { insecure: true } : {}),
          onProgress: (progress) => printer.update(progress),
        });
        printer.finish();
        if (options.json) {
          process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
        } else {
          process.stdout.write(
            `pushed ${result.reference}@${result.digest}\n` +
              `blobs: ${result.blobsUploaded} uploaded, ${result.blobsSkipped} already present, ${result.blobsMounted} mounted; ` +
              `${formatSize(result.bytesUploaded)} sent\n`,
          );
        }
      } finally {
        await source.close();
      }
    });
}
