// Byte access to the files of an OCI layout, wherever they live: a directory, or a tar of one.
import { createReadStream } from 'node:fs';
import { open, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { LayerFormatError } from '@clip/shared';

export interface LayoutStore {
  /** Size of a file in the layout, or undefined when it is absent. */
  size(path: string): Promise<number | undefined>;
  /** Whole file, or undefined when it is absent. */
  readFile(path: string): Promise<Buffer | undefined>;
  /** Bytes [start, end) of a file that exists. */
  readRange(path: string, start: number, end: number): Promise<Buffer>;
  /** Stream of a whole file that exists. */
  createStream(path: string): Readable;
  close(): Promise<void>;
}

function isNotFound(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

/** Reads exactly `length` bytes at `position` from a file, failing on a short read. */
export async function readExactly(file: string, position: number, length: number): Promise<Buffer> {
  const handle = await open(file, 'r');
  try {
    const buffer = Buffer.alloc(length);
    let done = 0;
    while (done < length) {
      const { bytesRead } = await handle.read(buffer, done, length - done, position + done);
      if (bytesRead === 0) throw new LayerFormatError(`${file}: unexpected end of file at byte ${position + done}`);
      done += bytesRead;
    }
    return buffer;
  } finally {
    await handle.close();
  }
}

/** An OCI layout directory on disk. */
export class DirectoryStore implements LayoutStore {
  constructor(private readonly dir: string) {}

  async size(path: string): Promise<number | undefined> {
    try {
      const info = await stat(join(this.dir, path));
      return info.isFile() ? info.size : undefined;
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw error;
    }
  }

  async readFile(path: string): Promise<Buffer | undefined> {
    try {
      return await readFile(join(this.dir, path));
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw error;
    }
  }

  readRange(path: string, start: number, end: number): Promise<Buffer> {
    return readExactly(join(this.dir, path), start, end - start);
  }

  createStream(path: string): Readable {
    return createReadStream(join(this.dir, path));
  }

  async close(): Promise<void> {}
}
