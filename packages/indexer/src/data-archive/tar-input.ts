// A rootfs tar (plain or gzip) as archive tables: the indexer's tar walk plus overlay rules
// applied as a single layer. Contents are copied in a second sequential pass over the tar, in
// stream order, so a gzip tar is never unpacked to disk.
import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { createGunzip } from 'node:zlib';
import type { Readable } from 'node:stream';
import { IoError, LayerFormatError } from '@clip/shared';
import { OverlayTree } from '../overlay/overlay-tree.js';
import { TarWalker } from '../tar/tar-walker.js';
import type { TarEntry } from '../tar/tar-entry.js';
import type { ContentSink, InputTables } from './content-sink.js';

async function isGzip(path: string): Promise<boolean> {
  const handle = await open(path, 'r');
  try {
    const head = Buffer.alloc(2);
    const { bytesRead } = await handle.read(head, 0, 2, 0);
    return bytesRead === 2 && head[0] === 0x1f && head[1] === 0x8b;
  } finally {
    await handle.close();
  }
}

function tarStream(path: string, gzip: boolean): Readable {
  const file = createReadStream(path, { highWaterMark: 1024 * 1024 });
  if (!gzip) return file;
  const gunzip = createGunzip();
  file.on('error', (error) => gunzip.destroy(error));
  return file.pipe(gunzip);
}

export interface TarInput {
  tables: InputTables;
  writeContents(sink: ContentSink): Promise<void>;
}

export async function readTarInput(path: string): Promise<TarInput> {
  let gzip: boolean;
  try {
    gzip = await isGzip(path);
  } catch (error) {
    throw new IoError(`cannot read ${path}: ${(error as Error).message}`, { cause: error });
  }
  const entries: TarEntry[] = [];
  const walker = new TarWalker(path, (entry) => entries.push(entry));
  for await (const chunk of tarStream(path, gzip)) walker.push(chunk as Buffer);
  walker.end();
  const tree = new OverlayTree();
  tree.applyLayer(0, path, entries);
  const tables = tree.toTables();

  // Where each file's bytes are in the tar stream; the sink assigns new (DATA) offsets.
  const ranges: { ino: number; offset: number; size: number; path: string }[] = [];
  const pathOf = new Map(tables.entries.map((entry) => [entry.ino, entry.path]));
  for (const inode of tables.inodes) {
    if (inode.data) ranges.push({ ino: inode.ino, offset: inode.data.offset, size: inode.size, path: pathOf.get(inode.ino) ?? '?' });
    delete inode.data;
  }
  ranges.sort((a, b) => a.offset - b.offset);

  return {
    tables,
    async writeContents(sink) {
      const source = tarStream(path, gzip)[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
      let buffered: Buffer = Buffer.alloc(0);
      let position = 0; // stream offset of buffered[0]
      const next = async (): Promise<boolean> => {
        const step = await source.next();
        if (step.done) return false;
        position += buffered.length;
        buffered = step.value;
        return true;
      };
      try {
        for (const range of ranges) {
          while (position + buffered.length <= range.offset) {
            if (!(await next())) throw new LayerFormatError(`${path}: ends before the data of ${range.path}`);
          }
          const chunks = async function* (): AsyncGenerator<Uint8Array> {
            let remaining = range.size;
            let at = range.offset;
            while (remaining > 0) {
              if (at >= position + buffered.length && !(await next())) throw new LayerFormatError(`${path}: ends inside ${range.path}`);
              const from = at - position;
              const take = Math.min(remaining, buffered.length - from);
              yield buffered.subarray(from, from + take);
              at += take;
              remaining -= take;
            }
          };
          await sink.file(range.ino, chunks(), `${path}:${range.path}`);
        }
      } finally {
        await source.return?.();
      }
    },
  };
}
