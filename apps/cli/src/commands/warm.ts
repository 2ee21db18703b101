// `clip warm <image|file.clip> [--all | --profile <record-file>]`: fill the mirrors or
// pull-through caches that hosts.toml lists for the image's registry, before a rollout, so
// the fleet's first workers find the blobs there instead of at the origin.
import { readFile, stat } from 'node:fs/promises';
import type { Command } from 'commander';
import { type Digest, UsageError, createLogger, formatSize, parsePlatform } from '@clip/shared';
import { HOSTS_DIR_HELP, hostsDirOption } from '../hosts-option.js';

interface WarmCommandOptions {
  hostsDir?: string;
  all?: boolean;
  profile?: string;
  platform?: string;
  concurrency: string;
  insecure?: boolean;
  json?: boolean;
  readThrough?: boolean;
  fillTimeout: string;
}

async function isFile(path: string): Promise<boolean> {
  return stat(path).then(
    (s) => s.isFile(),
    () => false,
  );
}

export function register(program: Command): void {
  program
    .command('warm')
    .description('fill the registry mirrors / pull-through caches of hosts.toml with the blobs an image start needs, ahead of a rollout')
    .argument('<image>', 'registry reference, or a .clip archive (its storage reference is warmed)')
    .option('--hosts-dir <dir>', HOSTS_DIR_HELP)
    .option('--all', 'every layer and the config (the default)')
    .option(
      '--profile <file>',
      'only the layers holding the files a --record file lists (needs the archive: a .clip argument, or the published one)',
    )
    .option('--platform <os/arch[/variant]>', 'platform to pick from an image index (default: this machine)')
    .option('--concurrency <n>', 'blobs read at once per mirror', '4')
    .option(
      '--read-through',
      'stream every blob whole through the mirror (caches that store only what they stream); default: trigger the fill and wait',
    )
    .option('--fill-timeout <seconds>', 'how long a triggered fill may take per blob', '600')
    .option('--insecure', 'allow plain HTTP / unverified TLS to a non-loopback registry')
    .option('--json', 'print the result as JSON on stdout')
    .action(async (image: string, options: WarmCommandOptions) => {
      if (options.all && options.profile) throw new UsageError('--all and --profile exclude each other');
      const concurrency = Number(options.concurrency);
      if (!Number.isInteger(concurrency) || concurrency < 1)
        throw new UsageError(`invalid --concurrency ${JSON.stringify(options.concurrency)}`);
      const fillTimeout = Number(options.fillTimeout);
      if (!(fillTimeout > 0)) throw new UsageError(`invalid --fill-timeout ${JSON.stringify(options.fillTimeout)}: expected seconds > 0`);
      const { hostsDir } = hostsDirOption(options);
      if (!hostsDir)
        throw new UsageError('no hosts directory: pass --hosts-dir <dir> (or set CLIP_HOSTS_DIR); /etc/containerd/certs.d does not exist');
      const logger = createLogger();
      const [{ openArchive }, { warmMirrors }] = await Promise.all([import('@clip/archive-format'), import('@clip/registry-fetch')]);

      // The archive, when one is needed: the argument itself, or the image's published one.
      let reference = image;
      let archivePath: string | undefined;
      if (image.endsWith('.clip') || (await isFile(image))) archivePath = image;
      else if (options.profile) {
        const { pullArchive } = await import('@clip/registry-fetch');
        archivePath = (await pullArchive(image, { logger, hostsDir, ...(options.insecure ? { insecure: true } : {}) })).path;
      }
      let layers: Digest[] | 'all' = 'all';
      let extraBlobs: Digest[] = [];
      if (archivePath) {
        const archive = openArchive(await readFile(archivePath));
        const storage = archive.metadata.storage;
        if (!storage) throw new UsageError(`${archivePath} carries its data (no registry storage reference): nothing to warm`);
        if (archivePath === image) reference = `${storage.registry}/${storage.repository}@${storage.manifestDigest}`;
        // External windows (archive v2.3) are read from the storage repository like layers.
        if (archive.externalWindows) extraBlobs = [archive.externalWindows.digest];
        if (options.profile) {
          const [{ readPrefetchList }, { resolveImagePath }] = await Promise.all([import('@clip/mounter'), import('@clip/read-engine')]);
          const chosen = new Set<Digest>();
          for (const entry of await readPrefetchList(options.profile)) {
            try {
              const layer = resolveImagePath(archive, entry.path).inode.data?.layer;
              if (layer !== undefined) chosen.add(archive.layers[layer]!.digest);
            } catch {
              logger.warn('profiled file is not in the image; skipped', { path: entry.path });
            }
          }
          layers = [...chosen];
        }
      }
      const result = await warmMirrors(reference, {
        hostsDir,
        logger,
        concurrency,
        layers,
        extraBlobs,
        fillTimeoutMs: fillTimeout * 1000,
        ...(options.readThrough ? { readThrough: true } : {}),
        ...(options.platform ? { platform: parsePlatform(options.platform) } : {}),
        ...(options.insecure ? { insecure: true } : {}),
        onBlob: (e) =>
          logger.info(e.error ? 'blob not warmed' : 'blob warmed', {
            mirror: e.mirror,
            digest: e.digest,
            bytes: e.bytes,
            ...(e.error ? { error: e.error } : {}),
          }),
      });
      const failed = result.mirrors.reduce((n, m) => n + m.failed.length, 0);
      if (options.json) process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
      else {
        for (const m of result.mirrors) {
          process.stdout.write(
            `${m.mirror}: ${m.blobs}/${result.blobs.length} blobs (${m.alreadyCached} already cached), ${formatSize(m.bytes)}${m.failed.length ? `, ${m.failed.length} failed` : ''}\n`,
          );
        }
      }
      if (failed > 0) {
        const first = result.mirrors.flatMap((m) => m.failed.map((f) => `${m.mirror} ${f.digest}: ${f.error}`))[0];
        const { RegistryError } = await import('@clip/shared');
        throw new RegistryError(`warming ${result.reference}: ${failed} blob(s) failed (first: ${first})`);
      }
    });
}
