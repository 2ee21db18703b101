// Opening an archive through ranged reads of its file (local or remote), so a data-carrying
// archive's tables are read without its DATA section, and file contents are then fetched
// block by block through the same LayerReader path as OCI-mode layers.
import { LayerNotFoundError, UsageError } from '@clip/shared';
import type { ClipArchive } from './archive.js';
import { openArchive, openArchiveHead } from './archive-reader.js';
import { archiveHeadLength } from './frame-verify.js';
import type { FetchRange } from './byte-range.js';

/**
 * Random access to the bytes of one archive file. A second byte-range interface beside
 * FetchRange on purpose: it reads the archive file itself (before any layer digest is known,
 * to find the head) and owns the file or connection (size, close); dataSectionFetchRange
 * turns it into the FetchRange of the archive's one layer.
 */
export interface ArchiveByteSource {
  /** Length of the whole archive file. */
  readonly size: number;
  /** Path or URL (without credentials), for logs and errors. */
  readonly description: string;
  /** Bytes [start, end) of the file, exactly `end - start` of them. */
  read(start: number, end: number, signal?: AbortSignal): Promise<Uint8Array>;
  close(): Promise<void>;
}

/** First read: header, section table and (usually) all tables of a small archive in one request. */
export const FIRST_READ_BYTES = 64 * 1024;

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

/**
 * Opens an archive by reading only its head: OCI-mode archives are read whole (they are only
 * tables), data-carrying ones up to their DATA section. Throws ArchiveFormatError when the
 * archive is corrupt or truncated.
 */
export async function openArchiveFromSource(source: ArchiveByteSource): Promise<ClipArchive> {
  let head = await source.read(0, Math.min(source.size, FIRST_READ_BYTES));
  // Header → section table → tables: at most two more reads.
  for (;;) {
    const need = archiveHeadLength(head, source.size);
    if (need <= head.length) break;
    head = concat(head, await source.read(head.length, need));
  }
  return head.length === source.size ? openArchive(head) : openArchiveHead(head, source.size);
}

/**
 * The FetchRange of a data-carrying archive: its layer's "blob" is the DATA section, so
 * blob range [start, end) is file range [data.offset + start, data.offset + end).
 */
export function dataSectionFetchRange(archive: ClipArchive, source: ArchiveByteSource): FetchRange {
  const data = archive.dataSection;
  if (!data) throw new UsageError(`${source.description} is not a data-carrying archive`);
  const digests = new Set(archive.layers.filter((layer) => layer.source === 'archive').map((layer) => layer.digest));
  return (digest, start, end, signal) => {
    if (!digests.has(digest)) return Promise.reject(new LayerNotFoundError(digest, source.description));
    if (!(Number.isSafeInteger(start) && Number.isSafeInteger(end) && start >= 0 && start <= end && end <= data.length)) {
      return Promise.reject(
        new UsageError(`byte range [${start}, ${end}) is outside the data section (${data.length} bytes) of ${source.description}`),
      );
    }
    return source.read(data.offset + start, data.offset + end, signal);
  };
}
