// A local archive file as an ArchiveByteSource: positioned reads of an open file handle, so a
// large data-carrying archive is never loaded whole.
import { open, type FileHandle } from 'node:fs/promises';
import { ArchiveFormatError } from '@clip/shared';
import type { ArchiveByteSource } from './data-archive.js';

class FileByteSource implements ArchiveByteSource {
  constructor(
    private readonly handle: FileHandle,
    readonly size: number,
    readonly description: string,
  ) {}

  async read(start: number, end: number): Promise<Uint8Array> {
    const out = Buffer.alloc(end - start);
    let filled = 0;
    while (filled < out.length) {
      const { bytesRead } = await this.handle.read(out, filled, out.length - filled, start + filled);
      if (bytesRead === 0)
        throw new ArchiveFormatError(`corrupt archive: ${this.description} is shorter than ${end} bytes (truncated while open?)`);
      filled += bytesRead;
    }
    return out;
  }

  close(): Promise<void> {
    return this.handle.close();
  }
}

export async function openFileByteSource(path: string): Promise<ArchiveByteSource> {
  let handle: FileHandle;
  try {
    handle = await open(path, 'r');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'error';
    throw new ArchiveFormatError(`cannot read archive ${path}: ${code}`, { cause: error });
  }
  const info = await handle.stat();
  if (info.isDirectory()) {
    // A directory opens fine and fails on the first read (EISDIR, an internal error).
    await handle.close();
    throw new ArchiveFormatError(`cannot read archive ${path}: it is a directory`);
  }
  return new FileByteSource(handle, info.size, path);
}
