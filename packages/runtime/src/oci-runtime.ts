// Drives an OCI runtime CLI (runc, crun: same command line) for one foreground container:
// `<runtime> --root <dir> run --bundle <dir> <id>` with stdio passed through, SIGINT/SIGTERM/
// SIGHUP/SIGQUIT forwarded to the container (`<runtime> kill`), a stop timeout after which the
// container is killed, and the container process's exit status as the result.
import { execFile, spawn } from 'node:child_process';
import { access, readFile } from 'node:fs/promises';
import { constants } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { silentLogger, type Logger } from '@clip/shared';
import { OciRuntimeError } from './errors.js';

const run = promisify(execFile);

export interface OciRuntimeOptions {
  /** Runtime binary; default `runc`. */
  path?: string;
  /** The runtime's state root (`--root`), private to this worker. */
  root: string;
  /** Global flags put before the command, e.g. crun's `--cgroup-manager=disabled`. */
  flags?: string[];
  logger?: Logger;
}

export interface RunResult {
  /** The container process's exit code; 128 + signal number when a signal ended it. */
  exitCode: number;
  /** When the runtime wrote the container's pid (the process was started), ms after spawn. */
  startedAfterMs?: number;
  /** The signal that was forwarded to the container, if any. */
  forwarded?: NodeJS.Signals;
  /** Killed at timeLimitMs. */
  timedOut?: boolean;
}

export interface RunOptions {
  /** After a forwarded SIGINT/SIGTERM, SIGKILL the container when it is still running this much later. */
  stopTimeoutMs?: number;
  /** Called once the container's process runs. */
  onStarted?: (afterMs: number) => void;
  /** SIGKILL the container when it still runs this long after the start (a profile run; servers never exit). */
  timeLimitMs?: number;
  /** No terminal input, and the container's stdout goes to stderr (stdout carries clip's own output). */
  detachStdio?: boolean;
}

const FORWARDED: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2'];

export class OciRuntime {
  readonly path: string;
  readonly root: string;
  private readonly flags: string[];
  private readonly logger: Logger;

  constructor(options: OciRuntimeOptions) {
    this.path = options.path ?? 'runc';
    this.root = options.root;
    this.flags = options.flags ?? [];
    this.logger = options.logger ?? silentLogger;
  }

  private async exec(args: string[]): Promise<string> {
    try {
      return (await run(this.path, ['--root', this.root, ...this.flags, ...args], { maxBuffer: 16 << 20 })).stdout;
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') throw new OciRuntimeError(`OCI runtime ${this.path} not found (install runc, or pass --runtime <path>)`);
      const stderr = String((error as { stderr?: string }).stderr ?? '').trim();
      throw new OciRuntimeError(`${this.path} ${args[0]} failed: ${stderr || (error as Error).message}`, { cause: error });
    }
  }

  /** Checks that the runtime binary exists and runs. */
  async check(): Promise<void> {
    await this.exec(['--version']).catch((error: unknown) => {
      if (error instanceof OciRuntimeError && /not found/.test(error.message)) throw error;
      throw new OciRuntimeError(`OCI runtime ${this.path} does not run: ${(error as Error).message}`);
    });
  }

  /** Runs the bundle's container in the foreground until its process exits. */
  async run(id: string, bundle: string, options: RunOptions = {}): Promise<RunResult> {
    const pidFile = join(bundle, 'container.pid');
    const logFile = join(bundle, 'runtime.log');
    const spawnedAt = performance.now();
    // Own process group: a terminal's Ctrl-C reaches the container once (through us), not twice.
    // stdin of a terminal is piped through (a background group reading the tty would stop).
    const ttyIn = process.stdin.isTTY === true && !options.detachStdio;
    const child = spawn(
      this.path,
      ['--root', this.root, ...this.flags, '--log', logFile, '--log-format', 'json', 'run', '--bundle', bundle, '--pid-file', pidFile, id],
      {
        stdio: options.detachStdio ? ['ignore', 2, 2] : [ttyIn ? 'pipe' : 'inherit', 'inherit', 'inherit'],
        detached: true,
      },
    );
    if (ttyIn && child.stdin) process.stdin.pipe(child.stdin);
    const result: RunResult = { exitCode: 0 };
    let killTimer: NodeJS.Timeout | undefined;
    const forward = (signal: NodeJS.Signals) => {
      result.forwarded ??= signal;
      this.logger.info('forwarding signal to container', { id, signal });
      this.kill(id, signal).catch(() => child.kill(signal));
      if ((signal === 'SIGTERM' || signal === 'SIGINT') && !killTimer) {
        killTimer = setTimeout(() => {
          this.logger.warn('container did not stop in time; killing it', { id, timeout_ms: options.stopTimeoutMs ?? 10_000 });
          this.kill(id, 'SIGKILL').catch(() => child.kill('SIGKILL'));
        }, options.stopTimeoutMs ?? 10_000);
      }
    };
    for (const signal of FORWARDED) process.on(signal, forward);
    const limitTimer =
      options.timeLimitMs === undefined
        ? undefined
        : setTimeout(() => {
            result.timedOut = true;
            this.kill(id, 'SIGKILL').catch(() => child.kill('SIGKILL'));
          }, options.timeLimitMs);
    // Time to exec: the runtime writes the pid file once the container process runs.
    let watching = true;
    const started = async (): Promise<boolean> => {
      if (result.startedAfterMs !== undefined) return true;
      if (
        !(await access(pidFile).then(
          () => true,
          () => false,
        ))
      )
        return false;
      if (result.startedAfterMs === undefined) {
        result.startedAfterMs = performance.now() - spawnedAt;
        options.onStarted?.(result.startedAfterMs);
      }
      return true;
    };
    void (async () => {
      while (watching && !(await started())) await new Promise((resolve) => setTimeout(resolve, 5));
    })();
    try {
      const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve, reject) => {
        child.once('error', (error: NodeJS.ErrnoException) =>
          reject(
            error.code === 'ENOENT'
              ? new OciRuntimeError(`OCI runtime ${this.path} not found (install runc, or pass --runtime <path>)`)
              : error,
          ),
        );
        child.once('exit', (c, s) => resolve([c, s]));
      });
      result.exitCode = code ?? 128 + signalNumber(signal);
    } finally {
      watching = false;
      if (killTimer) clearTimeout(killTimer);
      if (limitTimer) clearTimeout(limitTimer);
      for (const signal of FORWARDED) process.off(signal, forward);
      if (ttyIn) process.stdin.unpipe(child.stdin ?? undefined).pause();
    }
    // A container that ran and exited between two polls still counts as started (and is logged).
    // A runtime that could not start the container also exits non-zero: its log says so.
    if (!(await started())) {
      const failure = await runtimeError(logFile);
      if (failure) throw new OciRuntimeError(`${this.path} could not start container ${id}: ${failure}`);
    }
    return result;
  }

  async kill(id: string, signal: NodeJS.Signals | 'SIGKILL'): Promise<void> {
    await this.exec(['kill', id, signal.replace(/^SIG/, '')]);
  }

  /** Removes the container whatever its state; no-op when it does not exist. */
  async delete(id: string): Promise<void> {
    await this.exec(['delete', '--force', id]).catch((error: unknown) => {
      if (error instanceof OciRuntimeError && /does not exist|not exist|no such/i.test(error.message)) return;
      throw error;
    });
  }

  /** Ids of the containers under this root. */
  async list(): Promise<string[]> {
    const text = await this.exec(['list', '--format', 'json']).catch(() => 'null');
    const parsed = JSON.parse(text.trim() || 'null') as Array<{ id: string }> | null;
    return (parsed ?? []).map((c) => c.id);
  }
}

function signalNumber(signal: NodeJS.Signals | null): number {
  return (signal && constants.signals[signal]) ?? 0;
}

/** The first error the runtime logged (runc/crun JSON log lines), if any. */
async function runtimeError(logFile: string): Promise<string | undefined> {
  const text = await readFile(logFile, 'utf8').catch(() => '');
  for (const line of text.split('\n')) {
    try {
      const entry = JSON.parse(line) as { level?: string; msg?: string };
      if ((entry.level === 'error' || entry.level === 'fatal') && entry.msg) return entry.msg;
    } catch {
      // not JSON
    }
  }
  return undefined;
}
