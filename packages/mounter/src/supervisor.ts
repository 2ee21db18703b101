// Keeps a mount alive across deaths of the process serving it. The supervisor mounts and
// holds the FUSE connection (MountHolder: the /dev/fuse descriptor and the kernel's INIT) and
// never serves a read, so it is never busy; a serving child process inherits the descriptor
// as fd 3 and attaches to it. When the child dies (SIGKILL, OOM, crash) the kernel keeps the
// connection because the supervisor still holds it: readers wait instead of getting ENOTCONN,
// and the next child re-queues what the dead one had taken (FUSE_NOTIFY_RESEND) and answers.
//
// Child contract: fd 3 is the connection, an IPC channel is open, and the child sends
// `{ kind: 'serving' }` once it serves. A child that exits by itself before serving failed to
// start (bad archive, ...): that is final. SIGINT/SIGTERM are forwarded as SIGTERM; the child
// unmounts. If the supervisor itself dies, the child sees its IPC channel close and unmounts.
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { MountHolder } from '@clip/native-fuse';
import { silentLogger, type Logger } from '@clip/shared/log';
import { MountFailedError } from './errors.js';

/** The descriptor number a serving child finds the connection at. */
export const SERVER_CONNECTION_FD = 3;
/** A child that dies sooner than this after starting counts as a crash loop. */
const FAST_FAILURE_MS = 5000;
const MAX_FAST_FAILURES = 5;

export interface SupervisorOptions {
  /** Checked beforehand (checkMountpoint). */
  mountpoint: string;
  /** libfuse mount options (mountOptions()). */
  options: readonly string[];
  /** node arguments of a serving child (script first), told the INIT bytes and its generation. */
  serverArgs(init: string, generation: number): string[];
  logger?: Logger;
}

export interface ServerExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  served: boolean;
}

/** Mounts, runs serving children until the mount ends; resolves to the exit code to use. */
export async function superviseMount(options: SupervisorOptions): Promise<number> {
  const logger = options.logger ?? silentLogger;
  const holder = holdMount(options.mountpoint, options.options);
  const init = Buffer.from(holder.init).toString('base64');
  let child: ChildProcess | undefined;
  let stopping = false;
  let wake: () => void = () => {};

  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) {
      // A second signal means "now": the connection is aborted with the descriptors.
      child?.kill('SIGKILL');
      holder.release();
      process.exit(1);
    }
    stopping = true;
    logger.debug('forwarding signal to the serving process', { signal, pid: child?.pid });
    if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    wake();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  let exitCode = 1;
  let fastFailures = 0;
  try {
    for (let generation = 1; ; generation++) {
      const started = Date.now();
      const running = startServer(options.serverArgs(init, generation), holder.fd);
      child = running.child;
      const exit = await running.exited;
      child = undefined;
      exitCode = exit.code ?? 1;
      if (stopping || !holder.alive()) break;
      if (!exit.served && exit.signal === null) {
        logger.error('the serving process failed to start', { pid: running.child.pid, code: exit.code });
        break;
      }
      fastFailures = Date.now() - started < FAST_FAILURE_MS ? fastFailures + 1 : 0;
      if (fastFailures > MAX_FAST_FAILURES) {
        logger.error('serving processes keep dying; giving up the mount', { mountpoint: holder.mountpoint, restarts: generation - 1 });
        break;
      }
      logger.warn('serving process died; starting another on the same connection', {
        pid: running.child.pid,
        ...(exit.signal ? { signal: exit.signal } : { code: exit.code }),
      });
      if (fastFailures > 1) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, 100 * 2 ** fastFailures);
          wake = () => (clearTimeout(timer), resolve());
        });
        if (stopping) break;
      }
    }
  } finally {
    // Detaches the mount if no child did (a crash loop, a failed start, a signal between children).
    holder.release();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  return exitCode;
}

/** MountHolder.hold with a typed error that says what to fix. */
export function holdMount(mountpoint: string, mountOptions: readonly string[]): MountHolder {
  try {
    return MountHolder.hold(mountpoint, mountOptions);
  } catch (error) {
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

function startServer(args: string[], fd: number): { child: ChildProcess; exited: Promise<ServerExit> } {
  // Own process group: a terminal's Ctrl-C reaches the supervisor, which forwards it once.
  const child = spawn(process.execPath, [...process.execArgv, ...args], {
    stdio: ['ignore', 'inherit', 'inherit', fd, 'ipc'],
    detached: true,
  });
  let served = false;
  child.on('message', (message: unknown) => {
    if ((message as { kind?: unknown }).kind === 'serving') served = true;
  });
  const exited = new Promise<ServerExit>((resolve) => {
    child.once('error', () => resolve({ code: 1, signal: null, served }));
    child.once('exit', (code, signal) => resolve({ code, signal, served }));
  });
  return { child, exited };
}
