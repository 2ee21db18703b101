// Bench-only and streaming: scale images of up to 1M files are written one entry at a time, never
// held whole; the test kit's encodeTar (whole tars in memory, every entry type) serves the tests.
// Minimal ustar encoder for generated layers: directories and small regular files only,
// fixed owner/mode/mtime so the same spec always gives the same bytes (and digest).
const BLOCK = 512;
const MTIME = 1_700_000_000;

function writeOctal(header: Buffer, offset: number, length: number, value: number): void {
  header.write(value.toString(8).padStart(length - 1, '0'), offset, length - 1, 'ascii');
  header[offset + length - 1] = 0;
}

/** Splits a path into ustar prefix (≤155) and name (≤100) at a '/'. */
function splitName(path: string): [string, string] {
  if (Buffer.byteLength(path) <= 100) return ['', path];
  for (let cut = path.indexOf('/'); cut >= 0; cut = path.indexOf('/', cut + 1)) {
    const prefix = path.slice(0, cut);
    const name = path.slice(cut + 1);
    if (Buffer.byteLength(prefix) <= 155 && Buffer.byteLength(name) <= 100) return [prefix, name];
  }
  throw new Error(`path too long for ustar: ${path}`);
}

export function tarHeader(path: string, type: 'file' | 'dir', size: number): Buffer {
  const header = Buffer.alloc(BLOCK);
  const [prefix, name] = splitName(type === 'dir' && !path.endsWith('/') ? `${path}/` : path);
  header.write(name, 0, 100, 'utf8');
  writeOctal(header, 100, 8, type === 'dir' ? 0o755 : 0o644);
  writeOctal(header, 108, 8, 0);
  writeOctal(header, 116, 8, 0);
  writeOctal(header, 124, 12, size);
  writeOctal(header, 136, 12, MTIME);
  header.fill(0x20, 148, 156);
  header[156] = type === 'dir' ? 0x35 : 0x30;
  header.write('ustar\u000000', 257, 8, 'binary');
  header.write(prefix, 345, 155, 'utf8');
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += header[i]!;
  header.write(`${sum.toString(8).padStart(6, '0')}\u0000 `, 148, 8, 'binary');
  return header;
}

/** Header + content + padding to the next 512-byte block. */
export function tarFile(path: string, content: Buffer): Buffer {
  const padded = Math.ceil(content.length / BLOCK) * BLOCK;
  const out = Buffer.alloc(BLOCK + padded);
  tarHeader(path, 'file', content.length).copy(out, 0);
  content.copy(out, BLOCK);
  return out;
}

export function tarDir(path: string): Buffer {
  return tarHeader(path, 'dir', 0);
}

/** Two zero blocks end the archive. */
export const TAR_END = Buffer.alloc(2 * BLOCK);
