// The DATA section of a data-carrying archive: file contents concatenated into one stream,
// cut into blocks of `blockSize` uncompressed bytes, each compressed as its own gzip member
// (so it decodes alone) and recorded as one span with one piece: a read fetches and verifies
// whole blocks only. Blocks go to a temporary file, not memory.
import { createHash, type Hash } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';
import { promisify } from 'node:util';
import { gzip as gzipCallback, type ZlibOptions } from 'node:zlib';
import type { Digest } from '@clip/shared';
import type { ArchiveLayer, Span } from '@clip/archive-format';

const gzip = promisify<Uint8Array, ZlibOptions, Buffer>(gzipCallback);

export const DEFAULT_BLOCK_SIZE = 1024 * 1024;
export const DATA_MEDIA_TYPE = 'application/vnd.clip.data.v1+gzip';
/** Compression level: fixed, so equal input gives equal bytes. */
const LEVEL = 6;

function hex(hash: Hash): Digest {
  return `sha256:${hash.digest('hex')}`;
}

export class DataBlockWriter {
  private readonly spans: Span[] = [];
  private readonly compressedHash = createHash('sha256');
  private readonly uncompressedHash = createHash('sha256');
  private pending: Buffer[] = [];
  private pendingLength = 0;
  /** Uncompressed bytes accepted so far: the offset the next byte will have. */
  position = 0;
  private compressedLength = 0;

  constructor(
    private readonly out: FileHandle,
    private readonly blockSize: number = DEFAULT_BLOCK_SIZE,
  ) {}

  async write(chunk: Uint8Array): Promise<void> {
    let at = 0;
    while (at < chunk.length) {
      const n = Math.min(this.blockSize - this.pendingLength, chunk.length - at);
      this.pending.push(Buffer.from(chunk.subarray(at, at + n)));
      this.pendingLength += n;
      this.position += n;
      at += n;
      if (this.pendingLength === this.blockSize) await this.flushBlock();
    }
  }

  private async flushBlock(): Promise<void> {
    if (this.pendingLength === 0) return;
    const block = Buffer.concat(this.pending, this.pendingLength);
    this.pending = [];
    this.pendingLength = 0;
    const compressed = await gzip(block, { level: LEVEL });
    const start = this.compressedLength;
    const uncompressedStart = this.position - block.length;
    await this.out.write(compressed, 0, compressed.length, start);
    this.compressedLength += compressed.length;
    this.compressedHash.update(compressed);
    this.uncompressedHash.update(block);
    this.spans.push({
      checkpoint: { uncompressedOffset: uncompressedStart, compressedBitOffset: start * 8, window: new Uint8Array(0), kind: 'gzip-member' },
      uncompressedEnd: this.position,
      pieces: [
        {
          compressedEnd: this.compressedLength,
          uncompressedEnd: this.position,
          digest: `sha256:${createHash('sha256').update(compressed).digest('hex')}`,
        },
      ],
    });
  }

  /** Flushes the last block; the layer record describing the DATA section. */
  async finish(): Promise<{ layer: ArchiveLayer; dataLength: number }> {
    await this.flushBlock();
    return {
      layer: {
        digest: hex(this.compressedHash),
        diffId: hex(this.uncompressedHash),
        mediaType: DATA_MEDIA_TYPE,
        compression: 'gzip',
        compressedSize: this.compressedLength,
        uncompressedSize: this.position,
        spans: this.spans,
        source: 'archive',
      },
      dataLength: this.compressedLength,
    };
  }
}
