#!/usr/bin/env node
// `npm run bench [-- --quick]`: clip vs full pull on an emulated link, baseline measured in the
// same run. See docs/benchmarks.md for what each figure means.
import { rm } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { ClipCli } from './clip/cli.js';
import { nodeAppImage, pythonFatImage, pythonMinimalImage, pythonSciImage, syntheticImage, type BenchImage } from './images/catalog.js';
import { openLink, type Link } from './net/link.js';
import { deleteStaleNamespaces } from './net/namespace.js';
import { allProfiles, parseProfile, type LinkProfile } from './net/profiles.js';
import { uploadProbe, verifyLink, type LinkCheck } from './net/verify.js';
import { machineFacts } from './report/machine.js';
import { skippedRow, type ResultRow } from './report/model.js';
import { markdownTable, type BenchResults, type ImageSummary } from './report/results.js';
import { writeResults } from './report/write.js';
import { coldStart } from './scenarios/cold-start.js';
import { containerdStart } from './scenarios/containerd.js';
import type { BenchContext, PublishedImage } from './scenarios/context.js';
import { indexing } from './scenarios/indexing.js';
import { lazyPeers } from './scenarios/lazy-peers.js';
import { mountIo } from './scenarios/mount-io.js';
import { publishImage, publishScenario } from './scenarios/publish.js';
import { rangeFetch } from './scenarios/range-fetch.js';
import { runtimeScenarios } from './scenarios/runtime.js';
import { fleetScenario } from './scenarios/fleet.js';
import { FULL_SCALE, QUICK_SCALE, scale } from './scenarios/scale.js';
import { runCleanup } from './util/cleanup.js';
import { run } from './util/exec.js';

const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const IMAGE_BUILDERS: Record<string, () => Promise<BenchImage>> = {
  'python-minimal': pythonMinimalImage,
  'python-sci': pythonSciImage,
  'python-fat': pythonFatImage,
  'node-app': nodeAppImage,
  'synthetic-quick': () => syntheticImage('quick'),
  'synthetic-full': () => syntheticImage('full'),
};

interface Plan {
  quick: boolean;
  images: string[];
  /** Profiles the start scenario runs on, per image; other scenarios run on the reference profile. */
  startProfiles: LinkProfile[];
  reference: LinkProfile;
  /** Images measured on every profile (others only on the reference profile). */
  sweepImages: string[];
  repetitions: number;
  /** File counts of the scale scenario's synthetic images (empty: skip it). */
  scale: number[];
  outDir: string;
  keepWork: boolean;
  /** Run the lazy-loading peers (eStargz through stargz-snapshotter) on the reference profile. */
  peers: boolean;
  /** --only: scenario names to run (start, indexing, mount-io, ranged, publish, runtime, containerd, peers, scale); undefined = all. */
  only?: Set<string>;
  /** Workers of the fleet scenario (0: skip it); `fleetOnly` skips every other scenario. */
  fleet: number;
  fleetOnly: boolean;
}

function planFromArgs(argv: string[]): Plan {
  const { values } = parseArgs({
    args: argv,
    options: {
      quick: { type: 'boolean', default: false },
      images: { type: 'string' },
      profiles: { type: 'string' },
      repetitions: { type: 'string' },
      scale: { type: 'string' },
      out: { type: 'string' },
      'keep-work': { type: 'boolean', default: false },
      peers: { type: 'string' },
      only: { type: 'string' },
      fleet: { type: 'string' },
      'fleet-only': { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(
      'usage: npm run bench -- [--quick] [--images a,b] [--profiles 100mbit-10ms,...] [--repetitions N] [--scale 10000,100000|none] [--out dir] [--keep-work] [--only start,indexing,mount-io,ranged,publish,runtime,containerd,peers,scale] [--fleet N] [--fleet-only] [--peers estargz|none]\n' +
        `images: ${Object.keys(IMAGE_BUILDERS).join(', ')}\n`,
    );
    process.exit(0);
  }
  const quick = values.quick ?? false;
  if (values.peers !== undefined && !['estargz', 'none'].includes(values.peers))
    throw new Error(`bad --peers ${JSON.stringify(values.peers)} (estargz or none)`);
  const images =
    values.images?.split(',') ??
    (quick ? ['synthetic-quick', 'python-minimal'] : ['python-fat', 'python-sci', 'python-minimal', 'node-app', 'synthetic-full']);
  for (const image of images)
    if (!IMAGE_BUILDERS[image]) throw new Error(`unknown image ${image} (known: ${Object.keys(IMAGE_BUILDERS).join(', ')})`);
  const profiles = values.profiles ? values.profiles.split(',').map(parseProfile) : quick ? [parseProfile('100mbit-10ms')] : allProfiles();
  const reference = profiles.find((profile) => profile.name === '100mbit-10ms') ?? profiles[0]!;
  return {
    quick,
    images,
    startProfiles: profiles,
    reference,
    sweepImages: quick ? images : images.filter((image) => image.startsWith('python')),
    repetitions: Number(values.repetitions ?? (quick ? 1 : 3)),
    scale: values.scale === 'none' ? [] : values.scale ? values.scale.split(',').map(Number) : quick ? QUICK_SCALE : FULL_SCALE,
    outDir: values.out ?? join(REPO_ROOT, 'bench', 'results'),
    keepWork: values['keep-work'] ?? false,
    // Off in quick mode unless asked: converting images and starting containerd take minutes.
    peers: values.peers === undefined ? !quick : values.peers !== 'none',
    ...(values.only ? { only: new Set(values.only.split(',')) } : {}),
    fleet: Number(values.fleet ?? (values['fleet-only'] ? 8 : 0)),
    fleetOnly: values['fleet-only'] ?? false,
  };
}

async function checkPrerequisites(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('the benchmark needs root (network namespaces, tc, mounts)');
  for (const tool of ['ip', 'tc', 'nsenter', 'skopeo', 'umoci', 'docker-registry', 'curl', 'gzip', 'tar', 'python3']) {
    const found = await run('sh', ['-c', `command -v ${tool}`], { allowFailure: true });
    if (found.code !== 0) throw new Error(`missing tool: ${tool}`);
  }
}

function log(message: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${message}\n`);
}

async function guard(what: string, base: Omit<ResultRow, 'skipped'>, fn: () => Promise<ResultRow[]>): Promise<ResultRow[]> {
  try {
    return await fn();
  } catch (error) {
    log(`${what} failed: ${(error as Error).message}`);
    return [skippedRow(base, `${what} failed: ${(error as Error).message.slice(0, 300)}`)];
  }
}

async function main(): Promise<void> {
  const started = performance.now();
  const plan = planFromArgs(process.argv.slice(2));
  await checkPrerequisites();
  const stale = await deleteStaleNamespaces();
  if (stale.length > 0) log(`deleted stale namespaces: ${stale.join(', ')}`);
  const machine = await machineFacts();
  const workDir = join('/tmp', `clipbench-${process.pid}`);
  const rows: ResultRow[] = [];
  const linkChecks: LinkCheck[] = [];
  const published: PublishedImage[] = [];
  let link: Link | undefined;
  let shaping: string[] = [];
  try {
    log(`building/loading images: ${plan.images.join(', ')}`);
    const images: BenchImage[] = [];
    for (const name of plan.images) images.push(await IMAGE_BUILDERS[name]!());

    link = await openLink(join(workDir, 'link'), plan.reference);
    const context: BenchContext = { quick: plan.quick, repetitions: plan.repetitions, workDir, link, clip: new ClipCli(), log };
    const probe = await uploadProbe(link, workDir, plan.quick ? 8 << 20 : 32 << 20);
    for (const image of images) {
      log(`worker A: push + index ${image.name}`);
      published.push(await publishImage(context, image));
    }

    const profiles = [plan.reference, ...plan.startProfiles.filter((profile) => profile.name !== plan.reference.name)];
    for (const profile of profiles) {
      await link.setProfile(profile);
      if (profile.name === plan.reference.name) shaping = link.tcCommands;
      const check = await verifyLink(link, probe);
      linkChecks.push(check);
      log(`link ${profile.name}: measured ${check.measuredMbit.toFixed(0)} Mbit/s, request ${check.measuredRequestMs.toFixed(1)} ms`);
      for (const image of published) {
        const isReference = profile.name === plan.reference.name;
        if (!isReference && !plan.sweepImages.includes(image.bench.name)) continue;
        const base = { image: image.bench.name, profile: profile.name, unit: 's' as const, better: 'lower' as const, baselineLabel: '–' };
        if (isReference && plan.fleet > 0) {
          log(`fleet: ${plan.fleet} workers ${image.bench.name}`);
          rows.push(
            ...(await guard('fleet scenario', { ...base, scenario: 'fleet start', variant: 'all' }, () =>
              fleetScenario(context, image, plan.fleet),
            )),
          );
        }
        if (plan.fleetOnly) continue;
        log(`start + workload: ${image.bench.name} @ ${profile.name}`);
        let unpackedRoot: string | undefined;
        // `cold-start` is another name of `start`.
        const want = (name: string) => !plan.only || plan.only.has(name) || (name === 'start' && plan.only.has('cold-start'));
        if (want('start'))
          rows.push(
            ...(await guard('start scenario', { ...base, scenario: 'start + workload', variant: 'all' }, async () => {
              const outcome = await coldStart(context, image);
              unpackedRoot = outcome.unpackedRoot;
              return outcome.rows;
            })),
          );
        if (want('runtime')) {
          log(`containers (clip run): ${image.bench.name} @ ${profile.name}`);
          rows.push(
            ...(await guard('runtime scenario', { ...base, scenario: 'container start + workload', variant: 'all' }, () =>
              runtimeScenarios(context, image),
            )),
          );
        }
        if (!isReference) continue;
        if (want('indexing')) {
          log(`indexing: ${image.bench.name}`);
          rows.push(
            ...(await guard('indexing scenario', { ...base, scenario: 'indexing', variant: 'all' }, () => indexing(context, image))),
          );
        }
        if (want('mount-io')) {
          log(`mount I/O: ${image.bench.name}`);
          rows.push(
            ...(await guard('mount I/O scenario', { ...base, scenario: 'mount I/O', variant: 'all' }, () =>
              mountIo(context, image, unpackedRoot, check.measuredMbit),
            )),
          );
        }
        if (want('ranged')) {
          log(`ranged reads: ${image.bench.name}`);
          rows.push(
            ...(await guard('ranged reads scenario', { ...base, scenario: 'ranged reads', variant: 'all', unit: 's' }, () =>
              rangeFetch(context, image, check.measuredMbit),
            )),
          );
        }
        if (want('publish')) {
          log(`publish: ${image.bench.name}`);
          rows.push(
            ...(await guard('publish scenario', { ...base, scenario: 'publish', variant: 'all' }, () => publishScenario(context, image))),
          );
        }
        if (want('containerd')) {
          log(`containerd: ${image.bench.name}`);
          rows.push(
            ...(await guard('containerd scenario', { ...base, scenario: 'containerd start + workload', variant: 'all' }, () =>
              containerdStart(context, image),
            )),
          );
        }
        if (plan.peers && want('peers')) {
          log(`lazy-loading peers (eStargz): ${image.bench.name}`);
          const earlier = rows.filter((row) => row.image === image.bench.name && (row.profile === profile.name || row.profile === 'local'));
          rows.push(
            ...(await guard('peers scenario', { ...base, scenario: 'peers: start + workload', variant: 'all' }, () =>
              lazyPeers(context, image, earlier),
            )),
          );
        }
      }
      if (profile.name === plan.reference.name && plan.scale.length > 0 && !plan.fleetOnly && (!plan.only || plan.only.has('scale'))) {
        const base = {
          scenario: 'scale',
          variant: 'all',
          image: 'scale',
          profile: profile.name,
          unit: 's' as const,
          better: 'lower' as const,
          baselineLabel: '–',
        };
        rows.push(...(await guard('scale scenario', base, () => scale(context, plan.scale))));
      }
    }
  } finally {
    await link?.close().catch((error: unknown) => log(`link teardown: ${(error as Error).message}`));
    await runCleanup();
    if (!plan.keepWork) await rm(workDir, { recursive: true, force: true });
  }

  const imageSummaries: ImageSummary[] = published.map((image) => ({
    name: image.bench.name,
    description: image.bench.description,
    workload: image.bench.workload.description,
    layers: image.bench.image.layers.length,
    compressedBytes: image.bench.image.compressedBytes,
    uncompressedBytes: image.bench.uncompressedBytes,
    ...(image.archiveBytes === undefined
      ? {}
      : { archiveBytes: image.archiveBytes, archivePercentOfUncompressed: (100 * image.archiveBytes) / image.bench.uncompressedBytes }),
    ...(image.indexSkipped ? { indexSkipped: image.indexSkipped } : {}),
  }));
  const results: BenchResults = {
    version: 1,
    date: new Date().toISOString().slice(0, 19),
    mode: plan.quick ? 'quick' : 'full',
    command: `npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`,
    machine,
    profiles: [...new Set([plan.reference, ...plan.startProfiles].map((profile) => profile.name))],
    linkChecks,
    shaping,
    images: imageSummaries,
    rows,
    durationSeconds: (performance.now() - started) / 1000,
  };
  const written = await writeResults(plan.outDir, results);
  process.stdout.write(
    `${markdownTable(rows)}\n\nwritten: ${written.json}\n         ${written.md}\n         ${written.charts.join('\n         ')}\n`,
  );
}

main().catch(async (error: unknown) => {
  await runCleanup();
  process.stderr.write(`bench: ${(error as Error).stack ?? String(error)}\n`);
  process.exit(1);
});
