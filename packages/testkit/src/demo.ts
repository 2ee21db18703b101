// `npm run demo`: the build-worker side of clip end to end on this machine, one step at a
// time with timings. Starts a throwaway registry on 127.0.0.1, builds a fixture image into
// a local OCI layout, pushes it with skopeo, and checks what the registry serves. Everything
// it started is stopped and removed at the end, also on failure or Ctrl-C.
//
// Extending: append to STEPS. Each step gets the shared context (add fields as needed) and
// returns a one-line summary. To avoid a workspace dependency cycle (indexer/mounter tests
// depend on this package), later steps should drive the built CLI as a child process
// (`node apps/cli/dist/main.js ...`) rather than import those packages.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { formatSize } from '@clip/shared/size';
import { buildFixture, FIXTURE_NAMES, FIXTURES, type BuiltLayout, type FixtureName } from './fixtures.js';
import { startRegistry, type RunningRegistry } from './registry.js';
import { skopeoCopy, skopeoInspect } from './tools.js';

export interface DemoContext {
  /** Temporary directory for everything the demo writes. */
  work: string;
  fixture: FixtureName;
  registry?: RunningRegistry;
  layout?: BuiltLayout;
  /** `docker://127.0.0.1:<port>/demo/<fixture>:<tag>` once pushed. */
  remoteRef?: string;
  /** Runs at cleanup, last registered first. */
  defer(cleanup: () => Promise<void>): void;
}

export interface DemoStep {
  title: string;
  run(ctx: DemoContext): Promise<string>;
}

function need<T>(value: T | undefined, what: string): T {
  if (value === undefined) throw new Error(`demo step needs ${what} from an earlier step`);
  return value;
}

export const STEPS: DemoStep[] = [
  {
    title: 'start a registry on 127.0.0.1 (temporary storage)',
    async run(ctx) {
      const registry = await startRegistry();
      ctx.registry = registry;
      ctx.defer(() => registry.stop());
      return `docker-registry serving ${registry.url}`;
    },
  },
  {
    title: 'build the fixture image into a local OCI layout',
    async run(ctx) {
      const layout = await buildFixture(ctx.fixture, join(ctx.work, 'layout'));
      ctx.layout = layout;
      const layers = layout.image.layers
        .map((l) => `${l.compression} ${formatSize(l.size)} (tar ${formatSize(l.uncompressedSize)})`)
        .join(', ');
      return `${layout.ref}: ${layout.expected.size} paths; layers: ${layers}`;
    },
  },
  {
    title: 'push it to the registry with skopeo',
    async run(ctx) {
      const layout = need(ctx.layout, 'a layout');
      const registry = need(ctx.registry, 'a registry');
      ctx.remoteRef = `docker://${registry.host}/demo/${ctx.fixture}:${layout.tag}`;
      await skopeoCopy(layout.ref, ctx.remoteRef, { all: layout.images.length > 1 });
      return `pushed ${ctx.remoteRef}`;
    },
  },
  {
    title: 'check what the registry serves',
    async run(ctx) {
      const layout = need(ctx.layout, 'a layout');
      const summary = await skopeoInspect(need(ctx.remoteRef, 'a pushed image'));
      const same = summary.Layers.join() === layout.image.layers.map((l) => l.digest).join();
      if (!same) throw new Error(`registry serves layers ${summary.Layers.join(', ')}, expected the layout's`);
      return `manifest ${summary.Digest}, ${summary.Layers.length} layers, digests identical to the layout`;
    },
  },
  // Next (other packages): index the layout into a .clip archive, mount it from the
  // registry, read files and compare with the layout's expected tree.
];

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(2)} s`;
}

export async function runDemo(fixture: FixtureName, out: (line: string) => void = console.log): Promise<void> {
  const cleanups: Array<() => Promise<void>> = [];
  const work = await mkdtemp(join(tmpdir(), 'clip-demo-'));
  // maxRetries: a step interrupted by Ctrl-C may still be writing into work.
  cleanups.push(() => rm(work, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 }));
  const ctx: DemoContext = { work, fixture, defer: (cleanup) => cleanups.push(cleanup) };

  let cleaned: Promise<void> | undefined;
  const cleanup = () =>
    (cleaned ??= (async () => {
      for (const fn of cleanups.reverse()) await fn().catch((error: Error) => out(`cleanup failed: ${error.message}`));
    })());
  let interrupted = false;
  const onSignal = (signal: NodeJS.Signals) => {
    interrupted = true;
    out(`\n${signal}: cleaning up`);
    void cleanup().then(() => process.exit(signal === 'SIGINT' ? 130 : 143));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  out(`clip demo: fixture "${fixture}" — ${FIXTURES[fixture].description}`);
  const started = Date.now();
  try {
    for (const [i, step] of STEPS.entries()) {
      if (interrupted) return;
      out(`[${i + 1}/${STEPS.length}] ${step.title}`);
      const t = Date.now();
      const summary = await step.run(ctx);
      if (interrupted) return;
      out(`      ${summary} (${seconds(Date.now() - t)})`);
    }
    out(`done in ${seconds(Date.now() - started)}`);
  } finally {
    await cleanup();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

const isMain = process.argv[1] !== undefined && import.meta.url === new URL(`file://${process.argv[1]}`).href;
if (isMain) {
  const fixture = (process.argv[2] ?? 'layers') as FixtureName;
  if (!FIXTURE_NAMES.includes(fixture)) {
    console.error(`unknown fixture ${fixture}; one of: ${FIXTURE_NAMES.join(', ')}`);
    process.exit(2);
  }
  runDemo(fixture).catch((error: Error) => {
    console.error(`demo failed: ${error.message}`);
    process.exitCode = 1;
  });
}
