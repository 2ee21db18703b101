// A fleet starting one image at once: N workers (separate caches, started together) behind one
// shaped origin link, without and with a pull-through cache (Debian's docker-registry in proxy
// mode, unshaped: the zone-local tier) configured by containerd hosts.toml, and with the cache
// filled beforehand by `clip warm`. Measures the time until every worker has run the workload
// and the bytes the origin sent (the link proxy's counters).
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { mountOverlay } from '../clip/overlay.js';
import { startNamespacedRegistry } from '../net/registry.js';
import { finishRow, skippedRow, type ResultRow } from '../report/model.js';
import { run } from '../util/exec.js';
import { scratch, type BenchContext, type PublishedImage } from './context.js';

const CACHE_PORT = 5002;

interface FleetRun {
  seconds: number;
  originBytes: number;
  originRequests: number;
  /** Per-worker seconds. */
  workers: number[];
  /** Per-host counters of the last worker's mount. */
  hosts?: unknown;
  warmSeconds?: number;
  /** Cold cache only: a second wave of workers once the first one is done. */
  secondWave?: FleetRun;
}

async function oneWorker(
  context: BenchContext,
  image: PublishedImage,
  archive: string,
  hostsDir: string,
  label: string,
): Promise<{ seconds: number; metrics?: Record<string, unknown> }> {
  const dir = await scratch(context, `fleet-${label}`);
  const mountpoint = join(dir, 'image');
  await mkdir(mountpoint, { recursive: true });
  const started = performance.now();
  const mount = await context.clip.mount(archive, mountpoint, { cacheDir: join(dir, 'cache'), netns: context.link.netns, hostsDir });
  let overlay;
  try {
    overlay = await mountOverlay(mountpoint, join(dir, 'overlay'));
    await image.bench.workload.run(overlay.merged);
  } finally {
    await overlay?.unmount();
  }
  const seconds = (performance.now() - started) / 1000;
  const metrics = await mount.stop();
  return { seconds, ...(metrics ? { metrics } : {}) };
}

async function fleetRun(
  context: BenchContext,
  image: PublishedImage,
  archive: string,
  workers: number,
  label: string,
  cache: 'none' | 'cold' | 'warmed',
): Promise<FleetRun> {
  const dir = await scratch(context, `fleet-${label}-setup`);
  const hostsDir = cache === 'none' ? '' : join(dir, 'certs.d');
  let registry;
  try {
    let warmSeconds: number | undefined;
    if (cache !== 'none') {
      const origin = image.clientRef.split('/')[0]!;
      registry = await startNamespacedRegistry(context.link.netns, join(dir, 'cache-registry'), CACHE_PORT, [
        'proxy:',
        `  remoteurl: http://${origin}`,
      ]);
      const hostDir = join(hostsDir, origin.replace(/:(\d+)$/, '_$1_'));
      await mkdir(hostDir, { recursive: true });
      await writeFile(
        join(hostDir, 'hosts.toml'),
        `server = "http://${origin}"\n\n[host."http://127.0.0.1:${CACHE_PORT}"]\n  capabilities = ["pull", "resolve"]\n`,
      );
    }
    await context.link.resetCounters();
    if (cache === 'warmed') {
      context.log(`  clip warm ${image.bench.name}`);
      const warm = await context.clip.warm(archive, hostsDir, context.link.netns);
      warmSeconds = warm.seconds;
    }
    context.log(`  fleet ${label}: ${workers} workers ${image.bench.name}`);
    const started = performance.now();
    const results = await Promise.all(
      Array.from({ length: workers }, (_, i) => oneWorker(context, image, archive, hostsDir, `${label}-${i}`)),
    );
    const seconds = (performance.now() - started) / 1000;
    // A cold cache goes on filling from the origin after the reads: count that too.
    if (cache === 'cold') await new Promise((resolve) => setTimeout(resolve, 2000));
    const link = await context.link.resetCounters();
    const last = results.at(-1)?.metrics as { hosts?: unknown } | undefined;
    let secondWave: FleetRun | undefined;
    if (cache === 'cold') {
      context.log(`  fleet ${label}: second wave of ${workers} workers`);
      const again = performance.now();
      const wave = await Promise.all(
        Array.from({ length: workers }, (_, i) => oneWorker(context, image, archive, hostsDir, `${label}-2-${i}`)),
      );
      const waveLink = await context.link.resetCounters();
      const waveLast = wave.at(-1)?.metrics as { hosts?: unknown } | undefined;
      secondWave = {
        seconds: (performance.now() - again) / 1000,
        originBytes: waveLink.bytesDown,
        originRequests: waveLink.requests,
        workers: wave.map((r) => r.seconds),
        ...(waveLast?.hosts ? { hosts: waveLast.hosts } : {}),
      };
    }
    return {
      ...(secondWave ? { secondWave } : {}),
      seconds,
      originBytes: link.bytesDown,
      originRequests: link.requests,
      workers: results.map((r) => r.seconds),
      ...(last?.hosts ? { hosts: last.hosts } : {}),
      ...(warmSeconds !== undefined ? { warmSeconds } : {}),
    };
  } finally {
    await registry?.stop();
    if (registry) await run('rm', ['-rf', join(dir, 'cache-registry')], { allowFailure: true });
  }
}

export async function fleetScenario(context: BenchContext, image: PublishedImage, workers: number): Promise<ResultRow[]> {
  const base = {
    scenario: `fleet start (${workers} workers)`,
    image: image.bench.name,
    profile: context.link.profile.name,
    unit: 's' as const,
    better: 'lower' as const,
    baselineLabel: 'every worker from the origin',
  };
  const variants = ['pull-through cache (cold)', 'pull-through cache (second wave)', 'pull-through cache (clip warm first)'];
  const skip = image.indexSkipped ?? (await context.clip.unavailable('mount')) ?? (await context.clip.unavailable('warm'));
  if (skip || !image.archive) return variants.map((variant) => skippedRow({ ...base, variant }, skip ?? 'no archive'));
  const archive = image.archive;
  const plain = await fleetRun(context, image, archive, workers, 'origin', 'none');
  const rows: ResultRow[] = [];
  const cold = await fleetRun(context, image, archive, workers, 'cold', 'cold');
  const measurements: Array<[string, FleetRun]> = [[variants[0]!, cold]];
  if (cold.secondWave) measurements.push([variants[1]!, cold.secondWave]);
  measurements.push([variants[2]!, await fleetRun(context, image, archive, workers, 'warmed', 'warmed')]);
  for (const [variant, measured] of measurements) {
    rows.push(
      finishRow({
        ...base,
        variant,
        baseline: plain.seconds,
        clip: measured.seconds,
        baselineBytes: plain.originBytes,
        clipBytes: measured.originBytes,
        baselineRequests: plain.originRequests,
        clipRequests: measured.originRequests,
        note: `origin bytes ${(measured.originBytes / 1e6).toFixed(1)} MB vs ${(plain.originBytes / 1e6).toFixed(1)} MB${measured.warmSeconds !== undefined ? `; warm took ${measured.warmSeconds.toFixed(1)} s (before the rollout)` : ''}`,
        details: {
          baselineWorkers: plain.workers,
          workers: measured.workers,
          hosts: measured.hosts,
          ...(measured.warmSeconds !== undefined ? { warmSeconds: measured.warmSeconds } : {}),
        },
      }),
    );
  }
  return rows;
}
