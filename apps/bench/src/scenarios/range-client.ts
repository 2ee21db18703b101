// Runs inside the namespace: reads byte ranges of one blob with clip's registry client
// (@clip/registry-fetch) and prints {"seconds": …}. Exit code 3 = client not available.
//   node range-client.js <registry/repo:tag> <digest> <parallel> <json [[start,end],…]>
import { openImageSource } from '@clip/registry-fetch';

const [reference, digest, parallelText, rangesText] = process.argv.slice(2);
const ranges = JSON.parse(rangesText ?? '[]') as [number, number][];
const parallel = Number(parallelText ?? 4);

type RangeReader = (digest: string, start: number, end: number) => Promise<Uint8Array>;

interface RangeSource {
  readBlobRange(digest: string, start: number, end: number): Promise<Uint8Array>;
}

/** clip's registry client: `openImageSource(ref).readBlobRange(digest, start, endExclusive)`. */
async function openReader(): Promise<RangeReader | string> {
  const source = (await openImageSource(reference ?? '')) as Partial<RangeSource>;
  if (typeof source.readBlobRange !== 'function') return 'image source has no readBlobRange';
  return (d, s, e) => source.readBlobRange!(d, s, e);
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
