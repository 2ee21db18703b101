// `clip snapshotter`: the snapshots service on a unix socket, the metadata under --root,
// image mounts as detached `clip mount` processes, metrics on --metrics.
import { mkdir, rm, stat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { silentLogger, type Logger } from '@clip/shared';
import { SnapshotterSetupError } from './errors.js';
import { type ArchiveResolver, RemoteDecider } from './decision.js';
import { loadSnapshotsService, snapshotsHandlers } from './grpc-service.js';
import { RuntimeImageMountPool } from './runtime-pool.js';
import { SnapshotterMetrics, serveMetrics } from './metrics.js';
import { ClipSnapshotter } from './snapshotter.js';

export interface SnapshotterServerOptions {
  /** Unix socket path. */
  address: string;
  root: string;
  resolver: ArchiveResolver;
  /** Command running clip, for the image mount processes. */
  clipCommand: string[];
  /** The image mount pool's state (shared with `clip run` when it is the same directory). */
  stateDir: string;
  /** Disk cache of decoded spans shared by the image mounts, and its bound. */
  cacheDir?: string;
  cacheSize?: string;
  retries?: number;
  insecure?: boolean;
  /** containerd hosts.toml directory (mirrors) for the image mounts ('' for none). */
  hostsDir?: string;
  metrics?: { host: string; port: number };
  logger?: Logger;
}

export interface SnapshotterServer {
  address: string;
  metricsAddress?: string;
  snapshotter: ClipSnapshotter;
  close(): Promise<void>;
}

export async function startSnapshotterServer(options: SnapshotterServerOptions): Promise<SnapshotterServer> {
  const logger = options.logger ?? silentLogger;
  const root = resolve(options.root);
  const address = resolve(options.address);
  await mkdir(root, { recursive: true, mode: 0o700 }).catch((error: Error) => {
    throw new SnapshotterSetupError('root', `cannot create the snapshotter root ${root}: ${error.message}`, { cause: error });
  });
  const metrics = new SnapshotterMetrics();
  const pool = new RuntimeImageMountPool({
    stateDir: resolve(options.stateDir),
    clipCommand: options.clipCommand,
    logger,
    ...(options.cacheDir ? { cacheDir: options.cacheDir } : {}),
    ...(options.cacheSize ? { cacheSize: options.cacheSize } : {}),
    ...(options.retries !== undefined ? { retries: options.retries } : {}),
    ...(options.insecure ? { insecure: true } : {}),
    ...(options.hostsDir !== undefined ? { hostsDir: options.hostsDir } : {}),
  });
  const snapshotter = await ClipSnapshotter.open({ root, decider: new RemoteDecider(options.resolver), pool, metrics, logger });

  await mkdir(dirname(address), { recursive: true });
  // A socket left by a previous run (crash, kill -9) would make bind fail.
  if (
    await stat(address).then(
      (s) => s.isSocket(),
      () => false,
    )
  )
    await rm(address);
  const server = new grpc.Server({ 'grpc.max_receive_message_length': 16 * 1024 * 1024 });
  server.addService(loadSnapshotsService(), snapshotsHandlers(snapshotter, logger));
  await new Promise<void>((resolveBind, reject) => {
    server.bindAsync(`unix://${address}`, grpc.ServerCredentials.createInsecure(), (error) =>
      error
        ? reject(new SnapshotterSetupError('address', `cannot listen on ${address}: ${error.message}`, { cause: error }))
        : resolveBind(),
    );
  });
  // Remember which socket file is ours: a successor may already have replaced it when we close.
  const boundInode = (await stat(address)).ino;
  const metricsServer = options.metrics
    ? await serveMetrics(options.metrics.host, options.metrics.port, async () =>
        metrics.prometheus(await pool.list(), snapshotter.counts()),
      )
    : undefined;
  logger.info('snapshotter serving', { address, root, metrics: metricsServer?.address });
  return {
    address,
    snapshotter,
    ...(metricsServer ? { metricsAddress: metricsServer.address } : {}),
    close: async () => {
      // containerd keeps its connection open: give calls in flight a moment, then cut.
      const graceful = new Promise<void>((done) => server.tryShutdown(() => done()));
      const timer = setTimeout(() => server.forceShutdown(), 2000);
      await graceful;
      clearTimeout(timer);
      await metricsServer?.close();
      if ((await stat(address).catch(() => undefined))?.ino === boundInode) await rm(address, { force: true });
    },
  };
}
