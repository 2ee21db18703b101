/**
 * Byte-wise order of UTF-8 names without encoding them: the order of directory entries in an
 * archive (docs/archive-format.md), shared by the indexer that builds the tree and the encoder.
 */
export function compareNames(a: string, b: string): number {
  const length = Math.min(a.length, b.length);
  for (let i = 0; i < length; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x === y) continue;
    // UTF-16 code-unit order is code-point (= UTF-8 byte) order unless a surrogate meets a
    // unit above it; then compare the bytes.
    if (x >= 0xd800 && y >= 0xd800) return Buffer.compare(Buffer.from(a), Buffer.from(b));
    return x < y ? -1 : 1;
  }
  return a.length === b.length ? 0 : a.length < b.length ? -1 : 1;
}

/** Why `name` cannot be a directory entry name, or undefined if it can. */
export function invalidNameReason(name: string): string | undefined {
  if (name.length === 0) return 'empty name';
  if (name === '.' || name === '..') return `name ${JSON.stringify(name)} is reserved`;
  if (name.includes('/')) return `name ${JSON.stringify(name)} contains '/'`;
  if (name.includes('\0')) return `name ${JSON.stringify(name)} contains NUL`;
  return undefined;
}
