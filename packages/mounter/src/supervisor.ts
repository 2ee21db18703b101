// Keeps a mount alive across deaths of the process serving it. The supervisor mounts and
// holds the FUSE connection (MountHolder: the /dev/fuse descriptor and the kernel's INIT) and
// never serves a read, so it is never busy; a serving child process inherits the descriptor
// as fd 3 and attaches to it. When the child dies (SIGKILL, OOM, crash) the kernel keeps the
// connection because the supervisor still holds it: readers wait instead of getting ENOTCONN,
// and the next child re-queues what the dead one had taken (FUSE_NOTIFY_RESEND) and answers.
//
// A warm standby keeps the wait short: a while after a child serves, another one is started that
// opens the archive, caches and fetcher and then waits; when the active child dies, the standby is
// told to attach and only has to replay the INIT. Without a ready standby a fresh child starts.
// The standby waits STANDBY_DELAY_MS first: preparing costs a node start and an archive parse,
// CPU the cold start's workload needs on a small worker (bench: python-minimal's whole start is ~1 s).
//
// Child contract: fd 3 is the connection, an IPC channel is open. The child attaches when it
// receives `{ kind: 'attach', generation }` and then sends `{ kind: 'serving' }`. A child that
// exits by itself before serving failed to start (bad archive, ...): final for an active child;
// for a standby it only means no more standbys. SIGINT/SIGTERM are forwarded as SIGTERM (the
// active child unmounts, a standby just exits). If the supervisor dies, children see their IPC
// channel close: the active one unmounts, a standby exits.
//
// `deferred`: what a child needs but the supervisor learns only after mounting (clip mount's
// archive lookup). The first child starts at once, so its process start and module loading
// overlap the lookup; children started before the promise settles get its value as
// `{ kind: 'prepare', ...value }`, later ones from serverArgs. A rejection ends the mount and
// is thrown by superviseMount.
//
// SIGUSR2 replaces the serving process (e.g. to run an upgraded clip from disk): a fresh child
// prepares, says `{ kind: 'ready' }`, and then the active one is SIGKILLed and replaced as if
// it had died, with the fresh one ready to take over.
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { MountHolder } from '@clip/native-fuse';
import { isClipError, silentLogger, type Logger } from '@clip/shared';
import { MountFailedError } from './errors.js';

/** The descriptor number a serving child finds the connection at. */
export const SERVER_CONNECTION_FD = 3;
/**
 * A child that dies sooner than this after attaching counts towards a crash loop (e.g. a
 * request that kills every server it is resent to). From the third in a row the next attach
 * waits (200 ms, 400 ms, 800 ms); after the sixth the supervisor gives up the mount.
 */
const FAST_FAILURE_MS = 2000;
const BACKOFF_FROM = 3;
const MAX_FAST_FAILURES = 5;
/** How long after a child serves its standby is started (see above). */
export const STANDBY_DELAY_MS = 10_000;

export interface SupervisorOptions {
  /** Checked beforehand (checkMountpoint). */
  mountpoint: string;
  /** libfuse mount options (mountOptions()). */
  options: readonly string[];
  /**
   * node arguments of a serving child (script first), given the base64 INIT bytes and its
   * role: `active` is attached at once (and unmounts if orphaned before attaching), `standby`
   * waits for its turn (and just exits if orphaned).
   */
  serverArgs(init: string, role: ServerRole): string[];
  /** Keep a prepared standby child (default true). */
  standby?: boolean;
  /** Sent to children started before it settles (see above); serverArgs covers later ones. */
  deferred?: Promise<Record<string, unknown>>;
  /** Milliseconds after a child serves before its standby starts (default STANDBY_DELAY_MS). */
  standbyDelayMs?: number;
  logger?: Logger;
}

export type ServerRole = 'active' | 'standby';

/** The value of SupervisorOptions.deferred, for a child started before it was known. */
export interface PrepareMessage {
  kind: 'prepare';
  [field: string]: unknown;
}

export interface AttachMessage {
  kind: 'attach';
  generation: number;
}

interface Child {
  process: ChildProcess;
  generation: number;
  attachedAt: number;
  served: boolean;
  exited: boolean;
  /** Prepared (archive, caches, table), waiting for its turn. */
  ready: boolean;
  /** Killed on purpose by SIGUSR2: not a crash. */
  replaced: boolean;
  /** Started before `deferred` settled: waits for its `prepare` message. */
  deferred: boolean;
}

/** Mounts, runs serving children until the mount ends; resolves to the exit code to use. */
export async function superviseMount(options: SupervisorOptions): Promise<number> {
  const logger = options.logger ?? silentLogger;
  const holder = holdMount(options.mountpoint, options.options);
  const init = Buffer.from(holder.init).toString('base64');
  let useStandby = options.standby ?? true;
  let active: Child | undefined;
  let standby: Child | undefined;
  let standbyTimer: NodeJS.Timeout | undefined;
  let generation = 0;
  let fastFailures = 0;
  let stopping = false;
  let finished = false;
  /** The fresh child a SIGUSR2 started: once it is ready, the active one makes way. */
  let replacement: Child | undefined;
  let resolveExit!: (code: number) => void;
  const exitCode = new Promise<number>((resolve) => (resolveExit = resolve));
  /** options.deferred has not settled yet: children started now wait for its `prepare` message. */
  let deferredPending = options.deferred !== undefined;
  /** The rejection of options.deferred, which ends the mount. */
  let deferredFailure: { error: unknown } | undefined;

  const finish = (code: number) => {
    if (finished) return;
    finished = true;
    clearTimeout(standbyTimer);
    standby?.process.kill('SIGTERM');
    // Ended before any child served (the deferred lookup failed): the waiting child just leaves.
    if (active && !active.served && !active.exited) active.process.kill('SIGTERM');
    // Detaches the mount if no child did (a crash loop, a failed start, a signal between children).
    holder.release();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    process.off('SIGHUP', onSignal);
    process.off('SIGUSR2', onReplace);
    resolveExit(code);
  };

  const promote = (child: Child) => {
    child.generation = ++generation;
    child.attachedAt = Date.now();
    active = child;
    child.process.send({ kind: 'attach', generation } satisfies AttachMessage, () => {});
  };

  const startChild = (role: ServerRole): Child => {
    const child: Child = {
      process: startServer(options.serverArgs(init, role), holder.fd),
      generation: 0,
      attachedAt: 0,
      served: false,
      exited: false,
      ready: false,
      replaced: false,
      deferred: deferredPending,
    };
    child.process.on('message', (message: unknown) => {
      const kind = (message as { kind?: unknown }).kind;
      if (kind === 'ready') {
        child.ready = true;
        if (child === replacement && child === standby && active && !stopping && !finished) {
          active.replaced = true;
          active.process.kill('SIGKILL');
        }
      }
      if (kind !== 'serving') return;
      child.served = true;
      if (child === replacement) replacement = undefined;
      if (standbyTimer === undefined) {
        standbyTimer = setTimeout(() => {
          standbyTimer = undefined;
          if (useStandby && !standby && active?.served && !stopping && !finished) standby = startChild('standby');
        }, options.standbyDelayMs ?? STANDBY_DELAY_MS);
        standbyTimer.unref();
      }
    });
    child.process.once('exit', (code, signal) => onExit(child, code, signal));
    child.process.once('error', (error) => {
      logger.error('cannot start a serving process', { error: error.message });
      onExit(child, 1, null);
    });
    return child;
  };

  const onExit = (child: Child, code: number | null, signal: NodeJS.Signals | null) => {
    if (child.exited) return;
    child.exited = true;
    if (child === replacement) replacement = undefined;
    if (child === standby) {
      standby = undefined;
      if (stopping || finished) return;
      if (signal === null) {
        // It failed while preparing: it would again. Restarts fall back to fresh children.
        logger.warn('the standby serving process failed to start; continuing without one', { pid: child.process.pid, code });
        useStandby = false;
      } else if (active?.served) {
        standby = startChild('standby');
      }
      return;
    }
    if (child !== active) return;
    active = undefined;
    if (stopping || !holder.alive()) return finish(code ?? 1);
    if (!child.served && signal === null) {
      logger.error('the serving process failed to start', { pid: child.process.pid, code });
      return finish(code ?? 1);
    }
    if (!child.replaced) fastFailures = Date.now() - child.attachedAt < FAST_FAILURE_MS ? fastFailures + 1 : 0;
    if (fastFailures > MAX_FAST_FAILURES) {
      logger.error('serving processes keep dying; giving up the mount', { mountpoint: holder.mountpoint, restarts: generation - 1 });
      return finish(1);
    }
    const next = standby ?? startChild('active');
    const fields = { pid: child.process.pid, ...(signal ? { signal } : { code }), next: next.process.pid, standby: next === standby };
    if (child.replaced) logger.info('serving process replaced (SIGUSR2)', fields);
    else logger.warn('serving process died; starting another on the same connection', fields);
    standby = undefined;
    const delay = fastFailures >= BACKOFF_FROM ? 200 * 2 ** (fastFailures - BACKOFF_FROM) : 0;
    setTimeout(() => (stopping || finished ? next.process.kill('SIGTERM') : promote(next)), delay);
  };

  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) {
      // A second signal means "now": the connection is aborted with the descriptors.
      active?.process.kill('SIGKILL');
      standby?.process.kill('SIGKILL');
      holder.release();
      process.exit(1);
    }
    stopping = true;
    logger.debug('forwarding signal to the serving process', { signal, pid: active?.process.pid });
    standby?.process.kill('SIGTERM');
    // The same signal, so the serving process logs what stopped it.
    if (active) active.process.kill(signal);
    else finish(0);
  };
  const onReplace = () => {
    if (stopping || finished || replacement || !active) return;
    logger.info('replacing the serving process (SIGUSR2): a fresh one takes over once prepared', { pid: active.process.pid });
    const old = standby;
    // Forget the old standby first: its exit must not start another one.
    standby = replacement = startChild('standby');
    old?.process.kill('SIGTERM');
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  // A closed terminal or session must unmount like SIGTERM, never leave a stale mount (#19).
  process.on('SIGHUP', onSignal);
  process.on('SIGUSR2', onReplace);

  promote(startChild('active'));
  options.deferred?.then(
    (value) => {
      deferredPending = false;
      for (const child of [active, standby, replacement])
        if (child?.deferred && !child.exited) child.process.send({ ...value, kind: 'prepare' } satisfies PrepareMessage, () => {});
    },
    (error: unknown) => {
      deferredPending = false;
      deferredFailure = { error };
      finish(1);
    },
  );
  const code = await exitCode;
  if (deferredFailure) throw deferredFailure.error;
  return code;
}

/** MountHolder.hold with a typed error that says what to fix. */
export function holdMount(mountpoint: string, mountOptions: readonly string[]): MountHolder {
  try {
    return MountHolder.hold(mountpoint, mountOptions);
  } catch (error) {
    // The addon missing is a set-up problem with its own code (and fix), not a mount failure.
    if (isClipError(error) && error.code === 'CLIP_E_FUSE_NOT_BUILT') throw error;
    const reason = (error as Error).message;
    if (process.getuid?.() === 0) throw new MountFailedError(mountpoint, reason);
    throw new MountFailedError(mountpoint, `${reason}; without root clip mounts through fusermount3${rootlessHint()}`);
  }
}

/** Why fusermount3 most likely failed for this user. */
function rootlessHint(): string {
  try {
    accessSync('/usr/bin/fusermount3', constants.X_OK);
  } catch {
    return ', which is missing: install Debian package fuse3';
  }
  try {
    accessSync('/dev/fuse', constants.R_OK | constants.W_OK);
  } catch {
    return ', which opens /dev/fuse as the calling user: it must be mode 0666 (chmod 666 /dev/fuse, the default on Debian hosts)';
  }
  return ' (see its message above; the mountpoint must be a directory you own)';
}

function startServer(args: string[], fd: number): ChildProcess {
  // Own process group: a terminal's Ctrl-C reaches the supervisor, which forwards it once.
  return spawn(process.execPath, [...process.execArgv, ...args], {
    stdio: ['ignore', 'inherit', 'inherit', fd, 'ipc'],
    detached: true,
  });
}
