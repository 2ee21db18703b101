// Resuming raw inflate at a deflate block boundary that is not byte-aligned.
//
// Node's zlib has no inflatePrime, and shifting the compressed bytes by the bit offset breaks
// on stored blocks (whose contents are byte-aligned relative to the original stream). Instead
// we keep the original bytes and prepend empty, non-final deflate blocks whose total length in
// bits is ≡ k (mod 8), k being how many low bits of the first byte still belong to the
// previous block. The prefix's last k bits overwrite exactly those bits, so the inflater meets
// the real next block at the right bit position. The blocks produce no output and leave the
// dictionary untouched.

/** Bits of an empty non-final fixed-Huffman block (BFINAL=0, BTYPE=01, end-of-block 0000000): 10 bits. */
const EMPTY_FIXED_BLOCK: readonly number[] = [0, 1, 0, 0, 0, 0, 0, 0, 0, 0];

/** Appends `count` bits of `value`, least significant first (deflate's order for header fields and extra bits). */
function pushValue(bits: number[], value: number, count: number): void {
  for (let i = 0; i < count; i++) bits.push((value >> i) & 1);
}

/**
 * An empty non-final dynamic-Huffman block, 95 bits: HLIT=257, HDIST=1, HCLEN=19; the
 * literal/length code has only end-of-block (length 1), the distance code is empty.
 */
function emptyDynamicBlock(): number[] {
  const bits: number[] = [];
  pushValue(bits, 0, 1); // BFINAL = 0
  pushValue(bits, 2, 2); // BTYPE = 10 (dynamic)
  pushValue(bits, 257 - 257, 5); // HLIT
  pushValue(bits, 1 - 1, 5); // HDIST
  pushValue(bits, 19 - 4, 4); // HCLEN
  // Code-length code: symbol 18 → length 1 (code 0), 0 → length 2 (code 10), 1 → length 2 (code 11).
  const order = [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15];
  const lengths: Record<number, number> = { 18: 1, 0: 2, 1: 2 };
  for (const symbol of order) pushValue(bits, lengths[symbol] ?? 0, 3);
  // 258 code lengths: 256 zeros (18 ×138, 18 ×118), a 1 for end-of-block, a 0 for the only distance code.
  bits.push(0);
  pushValue(bits, 138 - 11, 7);
  bits.push(0);
  pushValue(bits, 118 - 11, 7);
  bits.push(1, 1); // symbol 1
  bits.push(1, 0); // symbol 0
  bits.push(0); // end-of-block (code 0, length 1)
  return bits;
}

const EMPTY_DYNAMIC_BLOCK = emptyDynamicBlock();

/** Prefix bit strings for k = 0..7, each of length ≡ k (mod 8). */
const PREFIX_BITS: readonly (readonly number[])[] = Array.from({ length: 8 }, (_, k) => {
  const bits: number[] = [];
  // Fixed blocks add 2 (mod 8) each, the dynamic block 7 (mod 8).
  const fixedCount = k % 2 === 0 ? k / 2 : ((((k - 7) % 8) + 8) % 8) / 2;
  if (k % 2 === 1) bits.push(...EMPTY_DYNAMIC_BLOCK);
  for (let i = 0; i < fixedCount; i++) bits.push(...EMPTY_FIXED_BLOCK);
  return bits;
});

/** Length in bits of the prefix used for residue k (for tests). */
export function prefixBitLength(k: number): number {
  return PREFIX_BITS[k]!.length;
}

/**
 * Raw-deflate input that starts decoding at bit `k` (0..7) of `compressed[0]`: empty blocks,
 * then the original bytes with the low k bits of the first byte replaced by the prefix's tail.
 */
export function deflateInputAt(compressed: Uint8Array, k: number): Uint8Array {
  if (k === 0) return compressed;
  const bits = PREFIX_BITS[k]!;
  const wholeBytes = (bits.length - k) / 8;
  const out = new Uint8Array(wholeBytes + compressed.length);
  for (let i = 0; i < wholeBytes * 8; i++) out[i >> 3]! |= bits[i]! << (i & 7);
  out.set(compressed, wholeBytes);
  const keepMask = 0xff & ~((1 << k) - 1);
  let tail = 0;
  for (let i = 0; i < k; i++) tail |= bits[wholeBytes * 8 + i]! << i;
  out[wholeBytes] = (out[wholeBytes]! & keepMask) | tail;
  return out;
}
