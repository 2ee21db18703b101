#!/usr/bin/env node
// Deflate block boundaries of a gzip layer, one "<compressed byte offset> <uncompressed offset>"
// line each (the places a decompression checkpoint can sit), with clip's native block inflater.
// usage: node blocks.mjs <layer.gz> <out.txt>   (after `npx turbo run build`)
import { readFileSync, writeFileSync } from 'node:fs';
import { EVENT_BOUNDARY, EVENT_STRIDE, loadNativeZran } from '@clip/native-zran';

const [blob, out] = process.argv.slice(2);
if (!blob || !out) throw new Error('usage: node blocks.mjs <layer.gz> <out.txt>');
const load = loadNativeZran();
if (!load.ok) throw new Error(load.reason);
const input = readFileSync(blob);
const inflater = new load.binding.GzipBlockInflater({ validate: false });
const output = new Uint8Array(8 << 20);
const events = new Int32Array(EVENT_STRIDE * 4096);
const ends = new Int32Array(2);
const lines = [];
let inPos = 0;
let outBase = 0;
while (inPos < input.length) {
  const count = inflater.run(input, inPos, output, 0, events, ends);
  if (count < 0) throw new Error(`inflate failed (${count}): ${inflater.message()}`);
  for (let i = 0; i < count; i++) {
    if (events[i * EVENT_STRIDE] === EVENT_BOUNDARY)
      lines.push(`${events[i * EVENT_STRIDE + 1]} ${outBase + events[i * EVENT_STRIDE + 2]}`);
  }
  if (ends[0] === inPos && ends[1] === 0) break;
  inPos = ends[0];
  outBase += ends[1];
}
inflater.close();
writeFileSync(out, `${lines.join('\n')}\n`);
process.stdout.write(`${lines.length} block boundaries, ${outBase} bytes of output\n`);
