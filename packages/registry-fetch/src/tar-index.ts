// Finds where each file's bytes sit inside a tar, reading only the 512-byte headers, so an
// oci-archive can be served by ranges without extraction. (tar-stream's extractor would
// stream every layer byte through JS just to learn offsets and does not expose them; its
// header decoder is not exported, so the few header fields we need are decoded here. The
// indexer's strict tar walker sits above this package and refuses what it cannot index; this
// reader only locates file data for serving an oci-archive, so it stays lenient and separate.)
import { open } from 'node:fs/promises';
import { LayerFormatError } from '@clip/shared';

export interface TarMember {
  /** Offset of the file's first data byte in the tar. */
  offset: number;
  size: number;
}

const BLOCK = 512;

function cString(block: Buffer, start: number, length: number): string {
  const field = block.subarray(start, start + length);
  const nul = field.indexOf(0);
  return field.subarray(0, nul < 0 ? field.length : nul).toString('utf8');
}

function parseSize(block: Buffer, file: string, at: number): number {
  const field = block.subarray(124, 136);
  // GNU base-256 encoding for sizes that do not fit 11 octal digits.
  if ((field[0]! & 0x80) !== 0) {
    let value = 0;
    for (let i = 1; i < field.length; i++) value = value * 256 + field[i]!;
    return value;
  }
  const text = cString(block, 124, 12).trim();
  const value = text === '' ? 0 : Number.parseInt(text, 8);
  if (!Number.isSafeInteger(value) || value < 0) throw new LayerFormatError(`${file}: bad tar size field at byte ${at}`);
  return value;
}

function checksumOk(block: Buffer): boolean {
  const stored = Number.parseInt(cString(block, 148, 8).trim(), 8);
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 32 : block[i]!;
  return stored === sum;
}

function paxRecords(data: Buffer): Map<string, string> {
  const records = new Map<string, string>();
  let pos = 0;
  while (pos < data.length) {
    const space = data.indexOf(0x20, pos);
    if (space < 0) break;
    const length = Number.parseInt(data.subarray(pos, space).toString('ascii'), 10);
    if (!Number.isSafeInteger(length) || length <= 0) break;
    const record = data.subarray(space + 1, pos + length - 1).toString('utf8');
    const eq = record.indexOf('=');
    if (eq > 0) records.set(record.slice(0, eq), record.slice(eq + 1));
    pos += length;
  }
  return records;
}

/** Normalises a tar member name to a layout-relative path (`./blobs/x` → `blobs/x`). */
export function normaliseTarPath(name: string): string {
  return name.replace(/^(\.\/)+/, '').replace(/^\/+/, '');
}

/** Maps each regular file of the tar to its data offset and size. */
export async function indexTar(file: string): Promise<Map<string, TarMember>> {
  const handle = await open(file, 'r');
  const entries = new Map<string, TarMember>();
  try {
    const { size: total } = await handle.stat();
    const block = Buffer.alloc(BLOCK);
    let position = 0;
    let longName: string | undefined;
    let pax: Map<string, string> | undefined;
    while (position + BLOCK <= total) {
      const { bytesRead } = await handle.read(block, 0, BLOCK, position);
      if (bytesRead < BLOCK) break;
      if (block.every((byte) => byte === 0)) break; // end-of-archive marker
      if (!checksumOk(block)) throw new LayerFormatError(`${file}: bad tar header checksum at byte ${position}`);
      const type = String.fromCharCode(block[156]!);
      let size = parseSize(block, file, position);
      const dataStart = position + BLOCK;
      const readData = async () => {
        const data = Buffer.alloc(size);
        await handle.read(data, 0, size, dataStart);
        return data;
      };
      if (type === 'x') {
        pax = paxRecords(await readData());
      } else if (type === 'L') {
        longName = cString(await readData(), 0, size);
      } else if (type === 'g') {
        // global pax header: nothing we need
      } else {
        const prefix = cString(block, 345, 155);
        const name = pax?.get('path') ?? longName ?? (prefix ? `${prefix}/${cString(block, 0, 100)}` : cString(block, 0, 100));
        const paxSize = pax?.get('size');
        if (paxSize !== undefined) size = Number.parseInt(paxSize, 10);
        if (type === '0' || type === '\0' || type === '7') {
          if (dataStart + size > total) throw new LayerFormatError(`${file}: tar member ${name} runs past the end of the file`);
          entries.set(normaliseTarPath(name), { offset: dataStart, size });
        }
        pax = undefined;
        longName = undefined;
      }
      position = dataStart + Math.ceil(size / BLOCK) * BLOCK;
    }
    return entries;
  } finally {
    await handle.close();
  }
}
