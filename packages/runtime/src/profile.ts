// The build-time access profile (`clip publish --profile`, `clip profile`): run the image's own
// command once, as `clip run` would (its mount pool, overlay root, runc), on a fresh lazy mount
// of the archive with access recording (`clip mount --record`), stop it at the time limit
// (servers never exit), and return what it read: the prefetch-list text, files in first-read
// order with byte ranges. A private state directory and no disk cache: nothing of the
// worker's is touched, and every read reaches the recorder.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { forceUnmount } from '@clip/mounter';
import { ClipError, silentLogger, type Logger } from '@clip/shared';
import { OciRuntime } from './oci-runtime.js';
import { runContainer } from './container.js';
import { MountServerError } from './errors.js';
import { ImageMountPool } from './mount-pool.js';
import type { ContainerOptions } from './oci-spec.js';

/** Default time limit, as stargz's optimizer (ctr-remote optimize --period 10). */
export const DEFAULT_PROFILE_SECONDS = 10;

const INTERRUPTS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

/** The profile run was stopped by a signal: what it read is incomplete. */
export class ProfileInterruptedError extends ClipError {
  constructor(message: string) {
    super('CLIP_E_INTERRUPTED', message);
  }
}

/** Checks before any work that the OCI runtime for the profile run is there and runs. */
export async function checkProfileRuntime(runtime = 'runc', flags: string[] = []): Promise<void> {
  await new OciRuntime({ path: runtime, root: join(tmpdir(), 'clip-profile-check'), flags }).check();
}

export interface RecordProfileOptions extends ContainerOptions {
  /** Local .clip file whose layers are in its storage registry (published, or at least pushed). */
  archive: string;
  /** Time limit in seconds (default 10). */
  seconds?: number;
  /** OCI runtime binary; default runc. */
  runtime?: string;
  runtimeFlags?: string[];
  /** No tini as pid 1. */
  init?: false;
  insecure?: boolean;
  /** containerd hosts.toml directory for the mount's registry reads ('' for none). */
  hostsDir?: string;
  /** argv running the clip CLI (the mount server is its `clip mount`). */
  clipCommand?: string[];
  logger?: Logger;
}

export interface RecordedProfile {
  /** The prefetch-list text (`clip mount --record` format). */
  profile: Buffer;
  /** Files it lists. */
  files: number;
  exitCode: number;
  /** The command still ran at the time limit and was killed. */
  stoppedAtLimit: boolean;
  runSeconds: number;
}

export async function recordProfile(options: RecordProfileOptions): Promise<RecordedProfile> {
  const logger = options.logger ?? silentLogger;
  const seconds = options.seconds ?? DEFAULT_PROFILE_SECONDS;
  const dir = await mkdtemp(join(tmpdir(), 'clip-profile-'));
  const recordFile = join(dir, 'profile.txt');
  const pool = new ImageMountPool({
    stateDir: join(dir, 'state'),
    noPrefetch: true,
    extraMountArgs: ['--record', recordFile, '--no-standby'],
    ...(options.insecure ? { insecure: true } : {}),
    ...(options.hostsDir !== undefined ? { hostsDir: options.hostsDir } : {}),
    ...(options.clipCommand ? { clipCommand: options.clipCommand } : {}),
    resolveArchive: async (archive) => archive,
    logger,
  });
  const { archive, seconds: _s, runtime, runtimeFlags, insecure: _i, hostsDir: _h, clipCommand: _c, logger: _l, ...container } = options;
  logger.info('recording the access profile', {
    archive,
    seconds,
    command: options.command ? options.command.join(' ') : "(the image's Entrypoint + Cmd)",
  });
  // Ctrl-C / SIGTERM reach the container (runContainer forwards them and cleans up); the
  // profile is then incomplete, so it is refused rather than published.
  let interrupted: NodeJS.Signals | undefined;
  const onSignal = (signal: NodeJS.Signals) => (interrupted ??= signal);
  for (const signal of INTERRUPTS) process.on(signal, onSignal);
  try {
    const summary = await runContainer(pool, archive, {
      ...container,
      timeLimitMs: seconds * 1000,
      detachStdio: true,
      ...(runtime ? { runtime } : {}),
      ...(runtimeFlags ? { runtimeFlags } : {}),
      logger,
    });
    if (interrupted) throw new ProfileInterruptedError(`recording the access profile was interrupted by ${interrupted}`);
    const stoppedAtLimit = summary.timedOut ?? false;
    if (stoppedAtLimit) logger.info('profile command stopped at the time limit', { seconds });
    else if (summary.exitCode !== 0)
      logger.warn('profile command exited with an error; keeping what it read', { exit_code: summary.exitCode });
    // The container was the mount's only holder: its release stopped the mount server, which
    // wrote the record file on unmount.
    const profile = await readFile(recordFile).catch((error: NodeJS.ErrnoException) => {
      throw new MountServerError(`the profile mount wrote no record file (${error.code ?? error.message}); see ${join(dir, 'state')} logs`);
    });
    const files = profile
      .toString('utf8')
      .split('\n')
      .filter((line) => line.trim() !== '' && !line.startsWith('#')).length;
    return { profile, files, exitCode: summary.exitCode, stoppedAtLimit, runSeconds: summary.timings.runMs / 1000 };
  } finally {
    for (const signal of INTERRUPTS) process.off(signal, onSignal);
    // After a failure a mount may be left: stop its server and detach it before removing the directory.
    for (const mount of await pool.list().catch(() => [])) {
      if (mount.alive) process.kill(mount.pid, 'SIGKILL');
      await forceUnmount(mount.mountpoint).catch(() => undefined);
    }
    await rm(dir, { recursive: true, force: true }).catch(() => undefined);
  }
}
