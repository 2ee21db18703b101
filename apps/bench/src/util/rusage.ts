// Peak RSS of processes the benchmark starts. clip runs under rss-wrapper.js (its own
// getrusage at exit); shell baselines run under python3's getrusage(RUSAGE_CHILDREN), i.e. the
// peak of the largest process of the pipeline.
import { readFile, rm } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { run, type RunOptions, type RunResult } from './exec.js';

const WRAPPER = fileURLToPath(new URL('../clip/rss-wrapper.js', import.meta.url));

export interface Measured extends RunResult {
  peakRssBytes: number;
}

/** `node <script> args…` with the script's peak RSS. */
export async function nodeWithPeakRss(script: string, args: string[], rssFile: string, options: RunOptions = {}): Promise<Measured> {
  await rm(rssFile, { force: true });
  const result = await run(process.execPath, [WRAPPER, rssFile, script, ...args], options);
  return { ...result, peakRssBytes: Number((await readFile(rssFile, 'utf8')).trim()) };
}

const PY =
  'import resource,subprocess,sys; r=subprocess.run(["bash","-o","pipefail","-c",sys.argv[1]]); print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(r.returncode)';

/** A shell pipeline with the peak RSS of its largest process. */
export async function shWithPeakRss(script: string, options: RunOptions = {}): Promise<Measured> {
  const result = await run('python3', ['-c', PY, script], options);
  return { ...result, peakRssBytes: Number(result.stdout.trim().split('\n').at(-1)) * 1024 };
}

/** VmRSS and VmHWM (peak) of a running process, in bytes. */
export async function processMemory(pid: number): Promise<{ rssBytes: number; peakBytes: number }> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kib = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? Number.NaN) * 1024;
  return { rssBytes: kib('VmRSS'), peakBytes: kib('VmHWM') };
}
