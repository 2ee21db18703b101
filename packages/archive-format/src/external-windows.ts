// Splitting an archive's checkpoint windows into a separate blob (v2.3, flag bit 2): what
// `clip publish` pushes, so that a worker downloads only the tables before mounting and fetches
// each window by range with the span that needs it. A byte-level rewrite: the windows blob is
// the WINDOWS section as it was (so the spans' window offsets stay valid), the other tables are
// copied unchanged, and WINDOWS_BLOB (the blob's sha256 and size) and WINDOW_DIGESTS (one
// sha256 per span's stored window) are added. Deterministic: the same archive splits into the
// same bytes.
import { createHash } from 'node:crypto';
import type { Digest } from '@clip/shared';
import { verifyFrame } from './archive-reader.js';
import { ByteReader, ByteWriter } from './binary.js';
import {
  FLAG_COMPRESSED_TABLES,
  FLAG_DATA_SECTION,
  FLAG_EXTERNAL_WINDOWS,
  SECTION,
  SPAN_RECORD as S,
  TABLES_BUT_WINDOWS,
  WINDOW_DIGEST_RECORD_SIZE,
  WINDOWS_BLOB_RECORD as WB,
} from './binary-layout.js';
import { compressSections, type EncodedSection } from './compressed-tables.js';
import { fail, guarded } from './format-errors.js';
import { recordView } from './frame-verify.js';
import { writeFrame } from './frame-write.js';

export interface SplitArchive {
  /** The v2.3 archive (flag bit 2): tables only. */
  archive: Uint8Array;
  /** The windows blob: the stored windows, concatenated. */
  windows: Uint8Array;
  windowsDigest: Digest;
}

/**
 * An OCI-mode archive with inline windows → the same archive with external windows and its
 * windows blob. Undefined when there is nothing to split (no window at all: e.g. zstd layers),
 * so the caller keeps the archive as it is. Refuses data-carrying archives and archives whose
 * windows are external already (ArchiveFormatError).
 */
export function splitWindows(bytes: Uint8Array): SplitArchive | undefined {
  return guarded(() => {
    const frame = verifyFrame(bytes, bytes.byteLength);
    if (frame.flags & FLAG_DATA_SECTION) fail('a data-carrying archive has no windows to split');
    if (frame.flags & FLAG_EXTERNAL_WINDOWS) fail('the archive’s windows are external already');
    const { sections } = frame.tables;
    const r = new ByteReader(frame.tables.bytes);
    const view = (id: number) => {
      const entry = sections.get(id);
      if (!entry) fail(`the archive has no section ${id}`);
      return recordView(id, entry);
    };
    const windowsView = view(SECTION.windows);
    if (windowsView.length === 0) return undefined;
    const windows = r.slice(windowsView.offset, windowsView.length, 'windows').slice();
    const spans = view(SECTION.spans);
    const digests = new ByteWriter(spans.count * WINDOW_DIGEST_RECORD_SIZE);
    for (let si = 0; si < spans.count; si++) {
      const at = spans.offset + si * spans.recordSize;
      const offset = r.u32(at + S.windowOffset);
      const stored = r.u32(at + S.windowStoredLength);
      if (r.u32(at + S.windowLength) === 0) continue;
      if (offset + stored > windows.length) fail(`span ${si} window is outside the windows section`);
      digests.set(
        si * WINDOW_DIGEST_RECORD_SIZE,
        createHash('sha256')
          .update(windows.subarray(offset, offset + stored))
          .digest(),
      );
    }
    const blobDigest = createHash('sha256').update(windows).digest();
    const blob = new ByteWriter(WB.size);
    blob.set(WB.digest, blobDigest);
    blob.u64(WB.length, windows.length);
    const out: EncodedSection[] = TABLES_BUT_WINDOWS.map((id) => {
      const v = view(id);
      return { id, recordSize: v.recordSize, bytes: r.slice(v.offset, v.length, `section ${id}`) };
    });
    out.push(
      { id: SECTION.windowsBlob, recordSize: WB.size, bytes: blob.bytes },
      { id: SECTION.windowDigests, recordSize: WINDOW_DIGEST_RECORD_SIZE, bytes: digests.bytes },
    );
    const compressed = (frame.flags & FLAG_COMPRESSED_TABLES) !== 0;
    const archive = writeFrame({
      sections: compressed ? compressSections(out) : out,
      inodeCount: frame.inodeCount,
      entryCount: frame.entryCount,
      compressed,
      externalWindows: true,
    });
    return { archive, windows, windowsDigest: `sha256:${blobDigest.toString('hex')}` };
  });
}
