// Adapter over the `clip` command line (apps/cli/dist/main.js, or $CLIP_BENCH_CLI). Each
// command is probed with `--help` first, so a command that has not landed yet turns its
// scenarios into "skipped: …" rather than a crash.
import type { ChildProcess } from 'node:child_process';
import { access } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { onCleanup } from '../util/cleanup.js';
import { run, startProcess, stopProcess, waitForOutput, type RunResult } from '../util/exec.js';
import { nodeWithPeakRss } from '../util/rusage.js';

export type ClipCommand = 'index' | 'push' | 'mount' | 'cat' | 'publish' | 'run' | 'warm' | 'snapshotter';

export interface MountOptions {
  cacheDir: string;
  prefetch?: string;
  record?: string;
  netns?: string;
  /** `--memory-cache` bound (clip's default when absent). */
  memoryCache?: string;
  /** `--hosts-dir` (containerd hosts.toml mirrors); '' for none. */
  hostsDir?: string;
  /** Extra environment of the clip process (e.g. `CLIP_FIRST_RUN`). */
  env?: Record<string, string>;
}

export interface RunningMount {
  mountpoint: string;
  /** pid of the process serving the mount now (its latest `serving reads pid=` line): it holds the caches. */
  readonly pid: number;
  /** Unmounts (SIGTERM) and returns the metrics JSON the mount prints on exit, if any. */
  stop(): Promise<Record<string, unknown> | undefined>;
}

export function defaultCliPath(): string {
  return process.env['CLIP_BENCH_CLI'] ?? fileURLToPath(new URL('../../../cli/dist/main.js', import.meta.url));
}

/** The last JSON object printed on its own line(s) in `text`. */
export function lastJsonObject(text: string): Record<string, unknown> | undefined {
  const lines = text.split('\n');
  for (let end = lines.length - 1; end >= 0; end--) {
    if (!lines[end]!.trim().endsWith('}')) continue;
    for (let start = end; start >= Math.max(0, end - 200); start--) {
      if (!lines[start]!.trim().startsWith('{')) continue;
      try {
        const value: unknown = JSON.parse(lines.slice(start, end + 1).join('\n'));
        if (value && typeof value === 'object' && !Array.isArray(value)) return value as Record<string, unknown>;
      } catch {
        // keep looking
      }
    }
  }
  return undefined;
}

export class ClipCli {
  private readonly probes = new Map<ClipCommand, Promise<string | undefined>>();
  private readonly optionProbes = new Map<string, Promise<string | undefined>>();

  constructor(readonly path: string = defaultCliPath()) {}

  /** undefined when the command is usable, else why not. */
  unavailable(command: ClipCommand): Promise<string | undefined> {
    let probe = this.probes.get(command);
    if (!probe) {
      probe = (async () => {
        try {
          await access(this.path);
        } catch {
          return `clip CLI not built (${this.path} missing; run npx turbo run build)`;
        }
        // `clip <unknown> --help` still exits 0, so look the command up in the top-level help.
        const help = await run(process.execPath, [this.path, '--help'], { allowFailure: true, timeoutMs: 30_000 });
        if (new RegExp(`^\\s+${command}\\b`, 'm').test(help.stdout)) return undefined;
        return `\`clip ${command}\` not available yet`;
      })();
      this.probes.set(command, probe);
    }
    return probe;
  }

  /** undefined when `clip <command> --help` lists `option` (e.g. `--profile`), else why not. */
  optionUnavailable(command: ClipCommand, option: string): Promise<string | undefined> {
    const key = `${command} ${option}`;
    let probe = this.optionProbes.get(key);
    if (!probe) {
      probe = (async () => {
        const missing = await this.unavailable(command);
        if (missing) return missing;
        const help = await run(process.execPath, [this.path, command, '--help'], { allowFailure: true, timeoutMs: 30_000 });
        const listed = new RegExp(`(^|[\\s,])${option.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\b`, 'm').test(help.stdout);
        return listed ? undefined : `\`clip ${command} ${option}\` not available yet (not in \`clip ${command} --help\`)`;
      })();
      this.optionProbes.set(key, probe);
    }
    return probe;
  }

  /** `clip index`'s default `--span-size` as its help prints it (e.g. `4MiB`), if found. */
  async defaultSpanSize(): Promise<string | undefined> {
    if (await this.unavailable('index')) return undefined;
    const help = await run(process.execPath, [this.path, 'index', '--help'], { allowFailure: true, timeoutMs: 30_000 });
    return /--span-size <size>[\s\S]*?\(default: "([^"]+)"\)/.exec(help.stdout)?.[1];
  }

  private exec(args: string[], netns?: string, timeoutMs = 30 * 60_000): Promise<RunResult> {
    return run(process.execPath, [this.path, ...args], { timeoutMs, ...(netns ? { netns } : {}) });
  }

  /** `clip index <source> -o <archive> [--storage-ref <ref>] --json`; returns timing and the JSON summary. */
  async index(
    source: string,
    archive: string,
    storageRef: string | undefined,
    netns?: string,
    spanSize?: string,
  ): Promise<{ seconds: number; summary?: Record<string, unknown> }> {
    const result = await this.exec(
      [
        'index',
        source,
        '-o',
        archive,
        '--json',
        ...(storageRef ? ['--storage-ref', storageRef] : []),
        ...(spanSize ? ['--span-size', spanSize] : []),
      ],
      netns,
    );
    const summary = lastJsonObject(result.stdout) ?? lastJsonObject(result.stderr);
    return { seconds: result.seconds, ...(summary ? { summary } : {}) };
  }

  /** `clip index` of a local source under rss-wrapper.js: time, summary and peak RSS of the process. */
  async indexWithPeakRss(
    source: string,
    archive: string,
    storageRef: string,
    rssFile: string,
  ): Promise<{ seconds: number; peakRssBytes: number }> {
    const args = [this.path, 'index', source, '-o', archive, '--json', '--no-progress', '--storage-ref', storageRef];
    const result = await nodeWithPeakRss(args[0]!, args.slice(1), rssFile, { timeoutMs: 60 * 60_000 });
    return { seconds: result.seconds, peakRssBytes: result.peakRssBytes };
  }

  /** `clip publish <source> <target> --json [extra…]` (extra: e.g. `--profile -- cmd…`, last). */
  async publish(
    source: string,
    target: string,
    output: string,
    netns?: string,
    extra: string[] = [],
  ): Promise<{ seconds: number; summary?: Record<string, unknown> }> {
    const result = await this.exec(['publish', source, target, '-o', output, '--json', '--no-progress', ...extra], netns);
    const summary = lastJsonObject(result.stdout);
    return { seconds: result.seconds, ...(summary ? { summary } : {}) };
  }

  async push(source: string, target: string, netns?: string): Promise<RunResult> {
    return this.exec(['push', source, target], netns);
  }

  /** `clip warm <archive> --hosts-dir <dir> --json`: fill the mirrors hosts.toml lists. */
  async warm(archive: string, hostsDir: string, netns?: string): Promise<RunResult> {
    return this.exec(['warm', archive, '--hosts-dir', hostsDir, '--json'], netns);
  }

  async cat(archive: string, path: string, netns?: string): Promise<RunResult> {
    return this.exec(['cat', archive, path], netns);
  }

  /** Starts `clip mount` in the foreground and resolves once it logs that it is mounted. */
  async mount(archive: string, mountpoint: string, options: MountOptions): Promise<RunningMount> {
    const args = [this.path, 'mount', archive, mountpoint, '--cache-dir', options.cacheDir];
    if (options.prefetch) args.push('--prefetch', options.prefetch);
    if (options.record) args.push('--record', options.record);
    if (options.memoryCache) args.push('--memory-cache', options.memoryCache);
    if (options.hostsDir !== undefined) args.push('--hosts-dir', options.hostsDir);
    const child: ChildProcess = startProcess(process.execPath, args, {
      ...(options.netns ? { netns: options.netns } : {}),
      ...(options.env ? { env: { ...process.env, ...options.env } } : {}),
    });
    let stderr = '';
    child.stderr?.on('data', (chunk: Buffer) => {
      stderr = (stderr + chunk.toString()).slice(-2_000_000);
    });
    child.stdout?.on('data', () => undefined);
    const unmount = async () => {
      await stopProcess(child, 10_000);
      await run('fusermount3', ['-u', '-z', mountpoint], { allowFailure: true });
    };
    const dispose = onCleanup(`unmount ${mountpoint}`, unmount);
    try {
      // `clip mount` is a supervisor; its serving process logs `serving reads pid=…` once it serves.
      await waitForOutput(child, (text) => /\bmounted\b/.test(text) && /msg="serving reads" pid=\d+/.test(text), 60_000);
    } catch (error) {
      dispose();
      await unmount();
      throw error;
    }
    return {
      mountpoint,
      get pid() {
        const pids = [...stderr.matchAll(/msg="serving reads" pid=(\d+)/g)];
        return pids.length ? Number(pids[pids.length - 1]![1]) : (child.pid ?? -1);
      },
      stop: async () => {
        dispose();
        await unmount();
        return lastJsonObject(stderr);
      },
    };
  }
}
