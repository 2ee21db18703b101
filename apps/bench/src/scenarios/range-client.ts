// Runs inside the namespace: reads byte ranges of one blob with clip's registry client and
// prints {"seconds": …}. Exit code 3 = the client API is not there yet (scenario skipped).
//   node range-client.js <registry/repo:tag> <digest> <parallel> <json [[start,end],…]>
const [reference, digest, parallelText, rangesText] = process.argv.slice(2);
const ranges = JSON.parse(rangesText ?? '[]') as [number, number][];
const parallel = Number(parallelText ?? 4);

type RangeReader = (digest: string, start: number, end: number) => Promise<Uint8Array>;

/** Finds a registry source in @clip/registry-fetch: `openRegistrySource(ref)` with `readRange`. */
async function openReader(): Promise<RangeReader | string> {
  let module: Record<string, unknown>;
  try {
    module = (await import('@clip/registry-fetch/registry-source')) as Record<string, unknown>;
  } catch {
    return 'no @clip/registry-fetch/registry-source module yet';
  }
  const open = module['openRegistrySource'];
  if (typeof open !== 'function') return 'no openRegistrySource export yet';
  const source = (await (open as (ref: string) => Promise<unknown>)(reference ?? '')) as { readRange?: (d: string, s: number, e: number) => Promise<Uint8Array> };
  if (typeof source.readRange !== 'function') return 'registry source has no readRange';
  return (d, s, e) => source.readRange!(d, s, e);
}

const reader = await openReader();
if (typeof reader === 'string') {
  process.stdout.write(`${reader}\n`);
  process.exit(3);
}
const started = performance.now();
let next = 0;
await Promise.all(
  Array.from({ length: parallel }, async () => {
    while (next < ranges.length) {
      const [start, end] = ranges[next++]!;
      await reader(digest ?? '', start, end + 1);
    }
  }),
);
process.stdout.write(`${JSON.stringify({ seconds: (performance.now() - started) / 1000 })}\n`);
