// The encoders: an archive's model → its bytes. OCI mode (file contents stay in the image's
// layers) and data-carrying mode (contents in the archive's DATA section). Tables come from
// encode-tables.ts, the file around them from frame-write.ts.
import { createHash } from 'node:crypto';
import type { EncodeOptions } from './archive.js';
import { CHECKSUM_SIZE } from './binary-layout.js';
import { compressSections, compressSectionsAsync } from './compressed-tables.js';
import { checkU64, encodeTables, type EncodedTables } from './encode-tables.js';
import { fail } from './format-errors.js';
import { writeFrame } from './frame-write.js';
import type { ArchiveContents } from './model.js';

/**
 * Deterministic: equal contents (up to entry order and object key order) give identical bytes.
 * OCI mode only; data-carrying contents (layers with source 'archive') go through
 * encodeDataArchiveHead / encodeDataArchive.
 */
export function encodeArchive(contents: ArchiveContents, options: EncodeOptions = {}): Uint8Array {
  const tables = ociTables(contents, options);
  return writeFrame(tables.compressed ? { ...tables, sections: compressSections(tables.sections) } : tables);
}

/**
 * encodeArchive with the table sections deflated in parallel on the libuv thread pool (the
 * indexer's serial tail); byte-identical to encodeArchive.
 */
export async function encodeArchiveAsync(contents: ArchiveContents, options: EncodeOptions = {}): Promise<Uint8Array> {
  const tables = ociTables(contents, options);
  return writeFrame(tables.compressed ? { ...tables, sections: await compressSectionsAsync(tables.sections) } : tables);
}

function ociTables(contents: ArchiveContents, options: EncodeOptions): EncodedTables {
  if (contents.layers.some((layer) => layer.source === 'archive')) fail('layers with source "archive" need the data-carrying encoder');
  return encodeTables(contents, options.compressTables);
}

/**
 * The head of a data-carrying archive (v2.1): header, section table, tables and the
 * TABLES_DIGEST section, ending where the DATA section of `dataLength` bytes starts. The
 * caller appends the DATA bytes and then the sha256 of everything before (the trailing
 * checksum). Every layer must have source 'archive' and compressedSize = dataLength.
 */
export function encodeDataArchiveHead(contents: ArchiveContents, dataLength: number, options: EncodeOptions = {}): Uint8Array {
  checkU64(dataLength, 'data section length');
  contents.layers.forEach((layer, li) => {
    if (layer.source !== 'archive') fail(`layers[${li}] of a data-carrying archive must have source "archive"`);
    if (layer.compressedSize !== dataLength)
      fail(`layers[${li}].compressedSize ${layer.compressedSize} is not the data section length ${dataLength}`);
  });
  const tables = encodeTables(contents, options.compressTables);
  return writeFrame(tables.compressed ? { ...tables, sections: compressSections(tables.sections) } : tables, dataLength);
}

/** A whole data-carrying archive in memory (small archives, fixtures, tests). */
export function encodeDataArchive(contents: ArchiveContents, data: Uint8Array, options: EncodeOptions = {}): Uint8Array {
  const head = encodeDataArchiveHead(contents, data.length, options);
  const out = new Uint8Array(head.length + data.length + CHECKSUM_SIZE);
  out.set(head, 0);
  out.set(data, head.length);
  out.set(
    createHash('sha256')
      .update(out.subarray(0, head.length + data.length))
      .digest(),
    head.length + data.length,
  );
  return out;
}
