// Options shared by `clip run` and `clip bundle`: the container's config overrides and the
// image mount pool (state directory, caches, registry options of `clip mount`).
import { homedir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import type { ContainerOptions, ImageMountPoolOptions } from '@clip/runtime';
import { parseSize, UsageError, type Logger } from '@clip/shared';
import { HOSTS_DIR_HELP, hostsDirOption } from '../hosts-option.js';
import { addTrustOptions, trustOptionsFrom, type TrustFlags } from '../archive-trust/cli-options.js';

export interface ContainerCommandOptions extends TrustFlags {
  env: string[];
  volume: string[];
  workdir?: string;
  user?: string;
  entrypoint?: string;
  net: string;
  hostname?: string;
  init: boolean;
  stateDir: string;
  cacheDir?: string;
  cacheSize: string;
  memoryCache: string;
  readTimeout: string;
  retries: string;
  insecure?: boolean;
  hostsDir?: string;
  /** false: --no-prefetch (the image mount applies no access profile). */
  prefetch?: boolean;
}

const collect = (value: string, previous: string[]) => [...previous, value];

export function registerContainerOptions(command: Command): void {
  command
    .option('-e, --env <KEY=VALUE>', 'set an environment variable (repeatable)', collect, [])
    .option('-v, --volume <host:container[:ro]>', 'bind-mount a host path (repeatable)', collect, [])
    .option('-w, --workdir <dir>', "working directory (default: the image's WorkingDir, else /)")
    .option('-u, --user <user[:group]>', "user name or uid[:gid], looked up in the image's /etc/passwd and /etc/group")
    .option('--entrypoint <command>', "replace the image's Entrypoint ('' clears it)")
    .option('--net <mode>', 'network: none (own namespace, loopback only) or host', 'none')
    .option('--hostname <name>', 'hostname (default: the container id)')
    .option('--no-init', 'run the command as pid 1 instead of under tini (signals then need handlers in the command)');
}

export function registerPoolOptions(command: Command): void {
  command
    .option('--state-dir <dir>', 'state of mounts, bundles and containers (shared by all clip run/bundle of this worker)', '/run/clip')
    .option(
      '--cache-dir <dir>',
      'disk cache of decoded spans, shared by all images (default $XDG_CACHE_HOME/clip/blocks, else ~/.cache/clip/blocks)',
    )
    .option('--cache-size <size>', 'disk cache bound', '4GiB')
    .option('--memory-cache <size>', 'memory cache bound of each image mount', '512MiB')
    .option('--read-timeout <seconds>', 'a read that waits longer for the registry fails with EIO', '30')
    .option('--retries <n>', 'retries of a failed registry request', '2')
    .option('--insecure', 'allow plain HTTP / unverified TLS to a non-loopback registry')
    .option('--hosts-dir <dir>', HOSTS_DIR_HELP)
    .option('--no-prefetch', 'a new image mount applies no access profile (default: the profile published with the archive)');
  // Which archives of a reference are served: the same trust rules as clip mount.
  addTrustOptions(command);
}

export async function parseContainerOptions(
  options: ContainerCommandOptions,
  command: string[],
): Promise<ContainerOptions & { init?: false }> {
  const { parseVolume } = await import('@clip/runtime');
  if (options.net !== 'none' && options.net !== 'host')
    throw new UsageError(`invalid --net ${JSON.stringify(options.net)}: expected none or host`);
  return {
    ...(command.length > 0 ? { command } : {}),
    ...(options.entrypoint !== undefined ? { entrypoint: options.entrypoint === '' ? [] : [options.entrypoint] } : {}),
    env: options.env,
    ...(options.workdir ? { workingDir: options.workdir } : {}),
    ...(options.user ? { user: options.user } : {}),
    network: options.net,
    ...(options.hostname ? { hostname: options.hostname } : {}),
    // Parsed here so a bad -v is a usage error before anything is mounted.
    volumes: options.volume.map((text) => {
      try {
        return parseVolume(text);
      } catch (error) {
        throw new UsageError(error instanceof Error ? error.message : String(error));
      }
    }),
    ...(options.init ? {} : { init: false as const }),
  };
}

/** The mount servers are this CLI's `clip mount`: without the FUSE addon, one clear error before anything starts. */
export async function requireFuseAddon(): Promise<void> {
  const { checkFuseAddon } = await import('@clip/mounter');
  checkFuseAddon();
}

export async function containerPoolOptions(options: ContainerCommandOptions, logger: Logger): Promise<ImageMountPoolOptions> {
  const readTimeout = Number(options.readTimeout);
  if (!(readTimeout > 0)) throw new UsageError(`invalid --read-timeout ${JSON.stringify(options.readTimeout)}: expected seconds > 0`);
  const retries = Number(options.retries);
  if (!Number.isInteger(retries) || retries < 0) throw new UsageError(`invalid --retries ${JSON.stringify(options.retries)}`);
  parseSize(options.cacheSize);
  parseSize(options.memoryCache);
  const insecure = options.insecure ?? false;
  const trust = await trustOptionsFrom(options);
  const hosts = hostsDirOption(options);
  const { resolveArchiveArgument } = await import('@clip/registry-fetch');
  const { isArchiveUrl } = await import('@clip/mounter');
  return {
    stateDir: options.stateDir,
    // On disk, not in the state directory (/run is usually tmpfs, i.e. memory).
    cacheDir: options.cacheDir ?? defaultSpanCacheDir(),
    cacheSize: options.cacheSize,
    memoryCache: options.memoryCache,
    readTimeoutMs: readTimeout * 1000,
    retries,
    insecure,
    // Mirrors: the mount servers get the same hosts directory (none resolved means none).
    hostsDir: hosts.hostsDir ?? '',
    ...(options.prefetch === false ? { noPrefetch: true } : {}),
    // The mount servers are this very CLI's `clip mount`.
    clipCommand: [process.execPath, fileURLToPath(new URL('../main.js', import.meta.url))],
    // Archives are found as `clip mount` finds them (referrers / fallback tag, archive cache).
    resolveArchive: async (image) =>
      isArchiveUrl(image) ? image : resolveArchiveArgument(image, { logger, insecure, ...trust, ...hosts }),
    logger,
  };
}

/** `${XDG_CACHE_HOME:-~/.cache}/clip/blocks` (the directory keeps its old name), next to the archive cache. */
function defaultSpanCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  const xdg = env['XDG_CACHE_HOME'];
  return join(xdg?.startsWith('/') ? xdg : join(homedir(), '.cache'), 'clip', 'blocks');
}
