// `clip run [options] <image> [-- command args...]`: start one container from a lazy mount in
// the foreground and exit with its exit code. Argument parsing and printing only; the work is
// @clip/runtime's runContainer.
import type { Command } from 'commander';
import { createLogger, redactUserinfo, UsageError } from '@clip/shared';
import {
  containerPoolOptions,
  parseContainerOptions,
  registerContainerOptions,
  registerPoolOptions,
  requireFuseAddon,
  type ContainerCommandOptions,
} from './runtime-options.js';

interface RunCommandOptions extends ContainerCommandOptions {
  name?: string;
  runtime?: string;
  runtimeRoot?: string;
  runtimeFlag: string[];
  keep?: boolean;
  stopTimeout: string;
  json?: boolean;
}

export function register(program: Command): void {
  const command = program
    .command('run')
    .usage('[options] <image> [-- command args...]')
    .description(
      'start a container from an image mounted lazily (overlay root, OCI spec from the image config, runc); foreground, exits with its exit code',
    )
    .argument('<image>', 'registry reference (its published archive is found and cached), .clip file or http(s) URL')
    .argument('[command...]', "command and arguments after --, replacing the image's Cmd");
  registerContainerOptions(command);
  registerPoolOptions(command);
  command
    .option('--name <id>', 'container id (default: random)')
    .option('--runtime <path>', 'OCI runtime binary (runc, crun, ...)', 'runc')
    .option('--runtime-root <dir>', "the runtime's --root (default <state-dir>/runtime)")
    .option(
      '--runtime-flag <flag>',
      'global flag put before the runtime command, repeatable (e.g. --runtime-flag=--debug)',
      (v: string, p: string[]) => [...p, v],
      [] as string[],
    )
    .option('--keep', "keep the container's upper (written) directory after exit")
    .option('--stop-timeout <seconds>', 'after forwarding SIGINT/SIGTERM, kill the container this much later', '10')
    .option('--json', 'print a JSON summary (times, bytes fetched) to stderr on exit')
    .action(async (image: string, words: string[], options: RunCommandOptions) => {
      const stopTimeout = Number(options.stopTimeout);
      if (!(stopTimeout >= 0)) throw new UsageError(`invalid --stop-timeout ${JSON.stringify(options.stopTimeout)}: expected seconds`);
      const logger = createLogger();
      const containerOptions = await parseContainerOptions(options, words);
      await requireFuseAddon();
      const { ImageMountPool, runContainer } = await import('@clip/runtime');
      const pool = new ImageMountPool(await containerPoolOptions(options, logger));
      const summary = await runContainer(pool, image, {
        ...containerOptions,
        ...(options.name ? { name: options.name } : {}),
        runtime: options.runtime ?? 'runc',
        ...(options.runtimeRoot ? { runtimeRoot: options.runtimeRoot } : {}),
        ...(options.runtimeFlag.length > 0 ? { runtimeFlags: options.runtimeFlag } : {}),
        ...(options.keep ? { keep: true } : {}),
        stopTimeoutMs: stopTimeout * 1000,
        logger,
      });
      if (summary.keptUpper) logger.info('kept the container upper directory', { id: summary.id, path: summary.keptUpper });
      // The image may be an archive URL typed with userinfo: never print the secret.
      if (options.json) process.stderr.write(`${redactUserinfo(JSON.stringify(summary))}\n`);
      process.exitCode = summary.exitCode;
    });
}
