// Runs external commands, optionally inside the benchmark's network namespace. Every call
// returns its wall time, so scenario code can time a step without wrapping it again.
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';

export interface RunOptions {
  /** Run inside this network namespace (only the network is switched; mounts stay shared). */
  netns?: string;
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  timeoutMs?: number;
  /** Bytes to write to stdin. */
  input?: string | Uint8Array;
  /** Do not throw on a non-zero exit code. */
  allowFailure?: boolean;
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
  seconds: number;
}

/**
 * `ip netns exec` also unshares the mount namespace, which would hide FUSE and overlay
 * mounts made by one worker from the others; nsenter switches only the network namespace.
 */
export function inNetns(netns: string | undefined, command: string, args: string[]): [string, string[]] {
  if (!netns) return [command, args];
  return ['nsenter', [`--net=/run/netns/${netns}`, '--', command, ...args]];
}

export class CommandError extends Error {
  constructor(
    message: string,
    readonly result: RunResult,
  ) {
    super(message);
  }
}

export async function run(command: string, args: string[], options: RunOptions = {}): Promise<RunResult> {
  const [cmd, argv] = inNetns(options.netns, command, args);
  const started = performance.now();
  const child = spawn(cmd, argv, {
    cwd: options.cwd,
    env: options.env ?? process.env,
    stdio: [options.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    stdout = (stdout + chunk.toString()).slice(-4_000_000);
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-400_000);
  });
  if (options.input !== undefined) child.stdin?.end(options.input);
  const timer = options.timeoutMs ? setTimeout(() => child.kill('SIGKILL'), options.timeoutMs) : undefined;
  const code = await new Promise<number>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (exitCode, signal) => resolve(exitCode ?? (signal ? 128 : 1)));
  }).finally(() => clearTimeout(timer));
  const result = { code, stdout, stderr, seconds: (performance.now() - started) / 1000 };
  if (code !== 0 && !options.allowFailure) {
    throw new CommandError(`${command} ${args.join(' ')} exited with ${code}: ${stderr.trim().slice(-2000)}`, result);
  }
  return result;
}

/** Runs a shell pipeline (for `tar | gzip` style steps). */
export function sh(script: string, options: RunOptions = {}): Promise<RunResult> {
  return run('bash', ['-o', 'pipefail', '-c', script], options);
}

/** Starts a long-running process (registry, proxy, clip mount); the caller owns stopping it. */
export function startProcess(command: string, args: string[], options: { netns?: string; env?: NodeJS.ProcessEnv } = {}): ChildProcess {
  const [cmd, argv] = inNetns(options.netns, command, args);
  const spawnOptions: SpawnOptions = { env: options.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'] };
  return spawn(cmd, argv, spawnOptions);
}

/** Stops a child: SIGTERM, then SIGKILL after a grace period. */
export async function stopProcess(child: ChildProcess, graceMs = 5000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}

/** Resolves once `predicate` sees a matching line on stdout or stderr, rejects if the process exits first. */
export function waitForOutput(child: ChildProcess, predicate: (text: string) => boolean, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let seen = '';
    const onData = (chunk: Buffer) => {
      seen += chunk.toString();
      if (predicate(seen)) finish(() => resolve(seen));
    };
    const onExit = (code: number | null) =>
      finish(() => reject(new Error(`process exited (${code}) before it was ready:\n${seen.slice(-3000)}`)));
    const timer = setTimeout(() => finish(() => reject(new Error(`not ready after ${timeoutMs} ms:\n${seen.slice(-3000)}`))), timeoutMs);
    const finish = (then: () => void) => {
      clearTimeout(timer);
      child.stdout?.off('data', onData);
      child.stderr?.off('data', onData);
      child.off('exit', onExit);
      then();
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.once('exit', onExit);
  });
}
