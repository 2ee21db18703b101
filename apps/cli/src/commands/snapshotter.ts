// `clip snapshotter`: containerd remote snapshotter (proxy plugin) on a unix socket. This
// file parses arguments and wires the registry side (the same archive lookup, credentials,
// retries and verification as `clip mount <ref>`); the service is @clip/snapshotter.
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { createLogger, parseSize, UsageError } from '@clip/shared';
import { HOSTS_DIR_HELP, hostsDirOption } from '../hosts-option.js';
import { addTrustOptions, trustOptionsFrom, type TrustFlags } from '../archive-trust/cli-options.js';

interface SnapshotterCommandOptions extends TrustFlags {
  address?: string;
  root?: string;
  cacheDir?: string;
  cacheSize?: string;
  config?: string;
  metrics?: string;
  insecure?: boolean;
  hostsDir?: string;
  retries?: string;
  stateDir?: string;
}

/** Keys a --config JSON file may set; flags win over it. */
const CONFIG_KEYS = ['address', 'root', 'stateDir', 'cacheDir', 'cacheSize', 'metrics', 'insecure', 'retries', 'hostsDir'] as const;

async function readConfig(path: string): Promise<Partial<SnapshotterCommandOptions>> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(await readFile(path, 'utf8'));
  } catch (error) {
    throw new UsageError(`cannot read --config ${path}: ${error instanceof Error ? error.message : String(error)}`);
  }
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw new UsageError(`--config ${path}: expected a JSON object`);
  const config: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(parsed)) {
    if (!(CONFIG_KEYS as readonly string[]).includes(key))
      throw new UsageError(`--config ${path}: unknown key ${JSON.stringify(key)} (known: ${CONFIG_KEYS.join(', ')})`);
    config[key] = typeof value === 'number' ? String(value) : value;
  }
  return config as Partial<SnapshotterCommandOptions>;
}

export function register(program: Command): void {
  const command = program
    .command('snapshotter')
    .description(
      'containerd remote snapshotter: containers start from clip archives lazily (configure as [proxy_plugins.clip] type = "snapshot")',
    )
    .option('--address <socket>', "unix socket to serve containerd's snapshots API on (default /run/clip/snapshotter.sock)")
    .option('--root <dir>', 'snapshot directories and metadata (default /var/lib/clip-snapshotter)')
    .option(
      '--state-dir <dir>',
      'image mounts (one per image; the same directory as clip run shares them with its containers) (default /run/clip)',
    )
    .option('--cache-dir <dir>', 'archives and decoded spans, shared by the image mounts (default <root>/cache)')
    .option('--cache-size <size>', 'disk cache bound of the image mounts (default 10GiB)')
    .option('--config <file>', `JSON file with any of: ${CONFIG_KEYS.join(', ')} (flags win)`)
    .option(
      '--metrics <host:port>',
      'serve Prometheus metrics (fallbacks by reason, lazy mounts, bytes fetched) on http://host:port/metrics',
    )
    .option('--insecure', 'allow plain HTTP / unverified TLS to non-loopback registries')
    .option('--retries <n>', 'retries of a failed registry request (default 2)')
    .option('--hosts-dir <dir>', HOSTS_DIR_HELP);
  // The same trust rules as clip mount <ref>: which archives may stand in for an image.
  addTrustOptions(command).action(async (flags: SnapshotterCommandOptions) => {
    const options: SnapshotterCommandOptions = { ...(flags.config ? await readConfig(flags.config) : {}), ...flags };
    const root = resolve(options.root ?? '/var/lib/clip-snapshotter');
    const address = resolve(options.address ?? '/run/clip/snapshotter.sock');
    const cacheDir = resolve(options.cacheDir ?? join(root, 'cache'));
    const cacheSize = options.cacheSize ?? '10GiB';
    parseSize(cacheSize);
    const retries = options.retries ?? '2';
    if (!/^\d+$/.test(retries)) throw new UsageError(`invalid --retries ${JSON.stringify(retries)}`);
    const insecure = options.insecure === true;
    if (flags.archiveDigest)
      throw new UsageError(
        '--archive-digest names one archive; the snapshotter serves many images (use --verify-key or --trust-referrers)',
      );
    const trust = await trustOptionsFrom(flags);
    const hosts = hostsDirOption(options);
    let metrics: { host: string; port: number } | undefined;
    if (options.metrics) {
      const match = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(options.metrics);
      if (!match || Number(match[3]) > 65535)
        throw new UsageError(`invalid --metrics ${JSON.stringify(options.metrics)}: expected host:port, e.g. 127.0.0.1:9102`);
      metrics = { host: match[1] ?? (match[2] || '127.0.0.1'), port: Number(match[3]) };
    }
    const logger = createLogger();
    const [{ startSnapshotterServer }, { pullArchive }] = await Promise.all([import('@clip/snapshotter'), import('@clip/registry-fetch')]);
    const archiveDir = join(cacheDir, 'archives');
    const server = await startSnapshotterServer({
      address,
      root,
      logger,
      clipCommand: [process.execPath, ...process.execArgv, process.argv[1] ?? 'clip'],
      stateDir: resolve(options.stateDir ?? '/run/clip'),
      cacheDir: join(cacheDir, 'blocks'), // the span cache; the directory keeps its old name
      cacheSize,
      retries: Number(retries),
      insecure,
      hostsDir: hosts.hostsDir ?? '',
      ...(metrics ? { metrics } : {}),
      resolver: {
        async resolve(imageRef) {
          const pulled = await pullArchive(imageRef, {
            ...trust,
            ...hosts,
            cacheDir: archiveDir,
            logger,
            ...(insecure ? { insecure: true } : {}),
          });
          const { openArchive } = await import('@clip/archive-format');
          const archive = openArchive(await readFile(pulled.path));
          return {
            imageRef: pulled.reference,
            manifestDigest: pulled.manifestDigest,
            archivePath: pulled.path,
            layers: archive.layers.map((l) => ({ digest: l.digest, diffId: l.diffId })),
          };
        },
      },
    });
    const signal = await new Promise<NodeJS.Signals>((done) => {
      process.once('SIGINT', () => done('SIGINT'));
      process.once('SIGTERM', () => done('SIGTERM'));
    });
    // Image mounts keep running: containers on them outlive a restart of the snapshotter.
    logger.info('snapshotter stopping', { signal });
    await server.close();
    process.exit(0);
  });
}
