// `clip bundle <image> <dir>`: an OCI bundle over a lazy mount (<dir>/config.json + <dir>/rootfs,
// an overlay over the image's shared mount) for workers that call their own runtime;
// `clip bundle --remove <dir>` tears it down and releases the mount.
import type { Command } from 'commander';
import { createLogger, UsageError } from '@clip/shared';
import {
  containerPoolOptions,
  parseContainerOptions,
  registerContainerOptions,
  registerPoolOptions,
  requireFuseAddon,
  type ContainerCommandOptions,
} from './runtime-options.js';

interface BundleCommandOptions extends ContainerCommandOptions {
  remove?: boolean;
  keep?: boolean;
  json?: boolean;
}

export function register(program: Command): void {
  const command = program
    .command('bundle')
    .usage('[options] <image> <dir> [-- command args...]  |  --remove <dir>')
    .description('prepare an OCI bundle (config.json + overlay rootfs over the lazy mount) without running it; --remove tears it down')
    .argument('[image]', 'registry reference, .clip file or http(s) URL (not with --remove)')
    .argument('[dir]', 'bundle directory (created)')
    .argument('[command...]', "command and arguments after --, replacing the image's Cmd");
  registerContainerOptions(command);
  registerPoolOptions(command);
  command
    .option('--remove', 'unmount the bundle at <dir>, delete its config.json and state, release the image mount')
    .option('--keep', 'with --remove: keep the upper (written) directory')
    .option('--json', 'print the result as JSON on stdout')
    .action(async (first: string | undefined, second: string | undefined, words: string[], options: BundleCommandOptions) => {
      const logger = createLogger();
      const { ImageMountPool, prepareBundle, removeBundle } = await import('@clip/runtime');
      if (options.remove) {
        // `clip bundle --remove <dir>`: commander puts the one operand first.
        const dir = second ?? first;
        if (!dir || (first !== undefined && second !== undefined) || words.length > 0)
          throw new UsageError('usage: clip bundle --remove <dir>');
        const pool = new ImageMountPool(await containerPoolOptions(options, logger));
        const result = await removeBundle(pool, dir, { keepUpper: options.keep ?? false });
        logger.info('removed bundle', { dir, kept_upper: result.keptUpper });
        if (options.json) process.stdout.write(`${JSON.stringify({ removed: dir, ...result })}\n`);
        return;
      }
      if (!first || !second) throw new UsageError('usage: clip bundle <image> <dir> [-- command args...]');
      const containerOptions = await parseContainerOptions(options, words);
      await requireFuseAddon();
      const pool = new ImageMountPool(await containerPoolOptions(options, logger));
      const started = performance.now();
      const bundle = await prepareBundle(pool, first, second, containerOptions);
      logger.info('bundle ready', {
        dir: bundle.dir,
        image: first,
        archive_digest: bundle.lease.archiveDigest,
        mount_reused: bundle.lease.reused,
        ms: Math.round(performance.now() - started),
      });
      if (options.json) {
        process.stdout.write(
          `${JSON.stringify({ dir: bundle.dir, rootfs: bundle.rootfs, config: `${bundle.dir}/config.json`, id: bundle.id, imageKey: bundle.lease.imageKey, manifestDigest: bundle.lease.manifestDigest, archiveDigest: bundle.lease.archiveDigest, mountReused: bundle.lease.reused })}\n`,
        );
      } else {
        process.stdout.write(`${bundle.dir}\n`);
      }
    });
}
