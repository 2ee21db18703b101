// Containers, not chroots: `clip run` (lazy mount + overlay + runc) versus full pull + unpack +
// `runc run` of the same runtime spec (built by @clip/runtime from the image config, workload
// command as the container command), on the same link; and eight containers of one image
// started at once on one worker (one shared mount) versus one.
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { buildRuntimeSpec, findInit, resolveUser, type ImageRuntimeConfig } from '@clip/runtime';
import { lastJsonObject } from '../clip/cli.js';
import { finishRow, skippedRow, type ResultRow } from '../report/model.js';
import { run } from '../util/exec.js';
import { median } from '../util/stats.js';
import { scratch, type BenchContext, type PublishedImage } from './context.js';

const FANOUT = 8;

interface Measurement {
  seconds: number;
  bytes: number;
  details?: Record<string, unknown>;
}

/** The runtime part of the config of the layout's (single) image. */
async function layoutImageConfig(layout: string): Promise<ImageRuntimeConfig> {
  const blob = async (digest: string) =>
    JSON.parse(await readFile(join(layout, 'blobs', ...digest.split(':')), 'utf8')) as Record<string, unknown>;
  const index = JSON.parse(await readFile(join(layout, 'index.json'), 'utf8')) as { manifests: Array<{ digest: string }> };
  const manifest = (await blob(index.manifests[0]!.digest)) as { config: { digest: string } };
  const config = ((await blob(manifest.config.digest)) as { config?: Record<string, unknown> }).config ?? {};
  return {
    ...(config['Entrypoint'] ? { entrypoint: config['Entrypoint'] as string[] } : {}),
    ...(config['Cmd'] ? { cmd: config['Cmd'] as string[] } : {}),
    ...(config['Env'] ? { env: config['Env'] as string[] } : {}),
    ...(config['WorkingDir'] ? { workingDir: config['WorkingDir'] as string } : {}),
    ...(config['User'] ? { user: config['User'] as string } : {}),
  };
}

/** skopeo copy + umoci unpack, then `runc run` of the spec clip run would write. */
async function baselineRun(context: BenchContext, image: PublishedImage, command: string): Promise<Measurement> {
  const dir = await scratch(context, `runtime-baseline-${image.bench.name}`);
  const layout = join(dir, 'layout');
  const bundle = join(dir, 'bundle');
  await context.link.resetCounters();
  const started = performance.now();
  await run('skopeo', ['copy', '--quiet', '--src-tls-verify=false', `docker://${image.clientRef}`, `oci:${layout}:latest`], {
    netns: context.link.netns,
    timeoutMs: 60 * 60_000,
  });
  await run('umoci', ['unpack', '--image', `${layout}:latest`, bundle], { timeoutMs: 60 * 60_000 });
  const config = await layoutImageConfig(layout);
  const user = await resolveUser(join(bundle, 'rootfs'), config.user);
  const init = findInit();
  const id = `bench-${process.pid}-${Date.now()}`;
  const spec = buildRuntimeSpec({ config, options: { command: ['/bin/sh', '-c', command] }, user, id, ...(init ? { init } : {}) });
  await writeFile(join(bundle, 'config.json'), JSON.stringify(spec));
  const root = join(dir, 'runc');
  try {
    await run('runc', ['--root', root, 'run', '--bundle', bundle, id], { timeoutMs: 30 * 60_000 });
  } finally {
    await run('runc', ['--root', root, 'delete', '--force', id], { allowFailure: true });
  }
  const seconds = (performance.now() - started) / 1000;
  return { seconds, bytes: (await context.link.resetCounters()).bytesDown };
}

/** `count` concurrent `clip run`s of the archive on one fresh worker (state, caches); time until all exited. */
async function clipRuns(context: BenchContext, image: PublishedImage, command: string, count: number): Promise<Measurement> {
  const dir = await scratch(context, `runtime-clip-${image.bench.name}`);
  const args = [
    'run',
    '--state-dir',
    join(dir, 'state'),
    '--cache-dir',
    join(dir, 'cache'),
    '--json',
    image.archive!,
    '--',
    '/bin/sh',
    '-c',
    command,
  ];
  await context.link.resetCounters();
  const started = performance.now();
  const results = await Promise.all(
    Array.from({ length: count }, () =>
      run(process.execPath, [context.clip.path, ...args], { netns: context.link.netns, timeoutMs: 30 * 60_000 }),
    ),
  );
  const seconds = (performance.now() - started) / 1000;
  const link = await context.link.resetCounters();
  const summaries = results.map((result) => lastJsonObject(result.stderr));
  return { seconds, bytes: link.bytesDown, details: { summaries } };
}

export async function runtimeScenarios(context: BenchContext, image: PublishedImage): Promise<ResultRow[]> {
  const profile = context.link.profile.name;
  const base = { image: image.bench.name, profile, better: 'lower' as const };
  const command = image.bench.workload.command;
  // Not applicable (not a failure): workloads that run on the host, e.g. the synthetic images' file walks.
  if (!command) {
    context.log(`  runtime: ${image.bench.name} has no command to run inside a container; not applicable`);
    return [];
  }
  const skip = image.indexSkipped ?? (await context.clip.unavailable('run')) ?? (image.archive ? undefined : 'no archive');
  const startBase = {
    ...base,
    scenario: 'container start + workload',
    variant: 'clip run (cold)',
    unit: 's' as const,
    baselineLabel: 'skopeo copy + umoci unpack + runc run',
  };
  const fanBase = {
    ...base,
    scenario: `${FANOUT} containers of one image, one worker`,
    unit: 's' as const,
    baselineLabel: '1 container (clip run)',
  };
  if (skip) {
    return [skippedRow(startBase, skip), skippedRow({ ...fanBase, variant: 'time until all exited' }, skip)];
  }
  const baselines: Measurement[] = [];
  const singles: Measurement[] = [];
  const fans: Measurement[] = [];
  for (let i = 0; i < context.repetitions; i++) {
    context.log(`  runtime: pull+unpack+runc ${image.bench.name} @ ${profile} (${i + 1}/${context.repetitions})`);
    baselines.push(await baselineRun(context, image, command));
    context.log(`  runtime: clip run ${image.bench.name} @ ${profile} (${i + 1}/${context.repetitions})`);
    singles.push(await clipRuns(context, image, command, 1));
    context.log(`  runtime: ${FANOUT}× clip run ${image.bench.name} @ ${profile} (${i + 1}/${context.repetitions})`);
    fans.push(await clipRuns(context, image, command, FANOUT));
  }
  const seconds = (runs: Measurement[]) => median(runs.map((r) => r.seconds));
  const bytes = (runs: Measurement[]) => median(runs.map((r) => r.bytes));
  return [
    finishRow({
      ...startBase,
      baseline: seconds(baselines),
      clip: seconds(singles),
      baselineBytes: bytes(baselines),
      clipBytes: bytes(singles),
      details: { clipRuns: singles.map((r) => r.details) },
    }),
    finishRow({
      ...fanBase,
      variant: 'time until all exited',
      baseline: seconds(singles),
      clip: seconds(fans),
      note: `ratio < 1: ${FANOUT} containers take longer than one; ${FANOUT}× would be serial`,
      details: { fanoutRuns: fans.map((r) => r.details) },
    }),
    finishRow({
      ...fanBase,
      variant: 'bytes fetched',
      unit: 'MB',
      baseline: bytes(singles) / 1e6,
      clip: bytes(fans) / 1e6,
      baselineBytes: bytes(singles),
      clipBytes: bytes(fans),
      note: "one shared mount: ≈ 1 container's bytes (ratio ≈ 1)",
    }),
  ];
}
