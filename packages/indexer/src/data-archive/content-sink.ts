// What an input (directory, tar) hands file contents to: each regular file with data, once,
// in any order; the sink records where its bytes start in the data stream.
import { IoError } from '@clip/shared';
import type { Inode } from '@clip/archive-format';
import type { DataBlockWriter } from './block-writer.js';

export interface ContentSink {
  /** Streams inode `ino`'s contents (exactly its size in bytes). */
  file(ino: number, chunks: AsyncIterable<Uint8Array>, what: string): Promise<void>;
}

/** Tables of an input: data locations are filled in by the sink. */
export interface InputTables {
  inodes: Inode[];
  entries: { path: string; ino: number }[];
}

export class BlockContentSink implements ContentSink {
  constructor(
    private readonly tables: InputTables,
    private readonly writer: DataBlockWriter,
  ) {}

  async file(ino: number, chunks: AsyncIterable<Uint8Array>, what: string): Promise<void> {
    const inode = this.tables.inodes[ino - 1];
    if (inode?.type !== 'file') throw new Error(`internal: inode ${ino} is not a regular file`);
    const start = this.writer.position;
    const changed = (detail: string) => new IoError(`${what}: ${detail} (did it change while archiving?)`);
    for await (const chunk of chunks) {
      if (this.writer.position - start + chunk.length > inode.size) throw changed(`more than the ${inode.size} bytes it had`);
      await this.writer.write(chunk);
    }
    const written = this.writer.position - start;
    if (written !== inode.size) throw changed(`read ${written} of its ${inode.size} bytes`);
    inode.data = { layer: 0, offset: start };
  }

  /** Every regular file with bytes must have been written. */
  check(): void {
    for (const inode of this.tables.inodes) {
      if (inode.type === 'file' && inode.size > 0 && !inode.data) throw new Error(`internal: no contents written for inode ${inode.ino}`);
    }
  }
}
