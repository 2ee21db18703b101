// Deterministic file contents for fixtures: the same spec always gives the same bytes,
// so digests are stable across runs and machines.

export interface GeneratedContent {
  /**
   * random: incompressible bytes; text: compressible lines; mixed: 64 KiB of each,
   * alternating (exercises both stored-like and well-compressed deflate blocks).
   */
  generate: 'random' | 'text' | 'mixed';
  size: number;
  seed?: number;
}

export type FileContent = string | Uint8Array | GeneratedContent;

/** mulberry32: tiny, fast, good enough to defeat compression. */
function randomBytes(into: Uint8Array, start: number, end: number, state: { s: number }): void {
  for (let i = start; i < end; i++) {
    state.s = (state.s + 0x6d2b79f5) | 0;
    let t = state.s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    into[i] = ((t ^ (t >>> 14)) >>> 0) & 0xff;
  }
}

function textBytes(into: Uint8Array, start: number, end: number, state: { line: number; seed: number }): void {
  let i = start;
  while (i < end) {
    const line = Buffer.from(
      `${String(state.line).padStart(8, '0')} seed=${state.seed} the quick brown fox jumps over the lazy dog ${state.line % 97}\n`,
    );
    const n = Math.min(line.length, end - i);
    into.set(line.subarray(0, n), i);
    i += n;
    state.line++;
  }
}

export function generateContent(spec: GeneratedContent): Uint8Array {
  const out = new Uint8Array(spec.size);
  const seed = spec.seed ?? 1;
  const rnd = { s: seed };
  const txt = { line: 0, seed };
  const chunk = 64 * 1024;
  for (let start = 0; start < spec.size; start += chunk) {
    const end = Math.min(start + chunk, spec.size);
    const useRandom = spec.generate === 'random' || (spec.generate === 'mixed' && (start / chunk) % 2 === 0);
    if (useRandom) randomBytes(out, start, end, rnd);
    else textBytes(out, start, end, txt);
  }
  return out;
}

export function contentBytes(content: FileContent | undefined): Uint8Array {
  if (content === undefined) return new Uint8Array();
  if (typeof content === 'string') return Buffer.from(content);
  if (content instanceof Uint8Array) return content;
  return generateContent(content);
}
