// `clip archive`: a directory or rootfs tar → a data-carrying .clip (format v2.1) holding the
// file contents itself, in independently decodable gzip blocks. Written atomically:
// contents are compressed to a temporary file first (the tables need the data length),
// then head + data + trailing checksum are written to a temporary name and renamed.
import { createHash, randomBytes } from 'node:crypto';
import { open, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { type ArchiveMetadata, encodeDataArchiveHead } from '@clip/archive-format';
import { ClipError, IoError, type Logger, silentLogger, UsageError } from '@clip/shared';
import { CREATED_BY } from '../create-archive.js';
import { DataBlockWriter, DEFAULT_BLOCK_SIZE } from './block-writer.js';
import { BlockContentSink, type ContentSink, type InputTables } from './content-sink.js';
import { readDirectoryInput } from './directory-input.js';
import { readTarInput } from './tar-input.js';

export interface CreateDataArchiveOptions {
  /** A directory, or a rootfs tar (plain or gzip). */
  input: string;
  output: string;
  /** Uncompressed bytes per block (default 1 MiB). */
  blockSize?: number;
  /** Read xattrs of a directory input (default true; needs getfattr). */
  xattrs?: boolean;
  logger?: Logger;
}

export interface DataArchiveSummary {
  output: string;
  inodes: number;
  entries: number;
  files: number;
  blocks: number;
  uncompressedBytes: number;
  dataBytes: number;
  archiveBytes: number;
}

const MIN_BLOCK = 4096;
const MAX_BLOCK = 64 * 1024 * 1024;

function ioError(what: string, error: unknown): ClipError {
  return error instanceof ClipError
    ? error
    : new IoError(`${what}: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
}

export async function createDataArchive(options: CreateDataArchiveOptions): Promise<DataArchiveSummary> {
  const logger = options.logger ?? silentLogger;
  const blockSize = options.blockSize ?? DEFAULT_BLOCK_SIZE;
  if (!Number.isInteger(blockSize) || blockSize < MIN_BLOCK || blockSize > MAX_BLOCK) {
    throw new UsageError(`block size ${blockSize} must be between ${MIN_BLOCK} and ${MAX_BLOCK} bytes`);
  }
  const input = resolve(options.input);
  const info = await stat(input).catch((error: unknown) => {
    throw ioError(`cannot read input ${options.input}`, error);
  });
  const kind = info.isDirectory() ? 'dir' : 'tar';
  logger.info('archiving with file contents', { input, kind, output: options.output });
  const source: { tables: InputTables; writeContents(sink: ContentSink): Promise<void> } = info.isDirectory()
    ? await readDirectoryInput(input, { xattrs: options.xattrs ?? true })
    : await readTarInput(input);

  const output = resolve(options.output);
  const suffix = randomBytes(6).toString('hex');
  const dataPath = join(dirname(output), `.${basename(output)}.${suffix}.data`);
  const tmpPath = join(dirname(output), `.${basename(output)}.${suffix}.tmp`);
  try {
    const dataFile = await open(dataPath, 'w+').catch((error: unknown) => {
      throw ioError(`cannot write next to ${options.output}`, error);
    });
    try {
      const writer = new DataBlockWriter(dataFile, blockSize);
      const sink = new BlockContentSink(source.tables, writer);
      await source.writeContents(sink);
      sink.check();
      const { layer, dataLength } = await writer.finish();
      const metadata: ArchiveMetadata = { sourceRef: `${kind}:${basename(input)}`, imageConfig: {}, createdBy: CREATED_BY };
      const head = encodeDataArchiveHead(
        { metadata, layers: [layer], inodes: source.tables.inodes, entries: source.tables.entries },
        dataLength,
      );

      const out = await open(tmpPath, 'w');
      try {
        const checksum = createHash('sha256').update(head);
        await out.write(head, 0, head.length, 0);
        const chunk = Buffer.alloc(1024 * 1024);
        for (let at = 0; at < dataLength; ) {
          const { bytesRead } = await dataFile.read(chunk, 0, Math.min(chunk.length, dataLength - at), at);
          if (bytesRead === 0) throw new IoError(`${dataPath} is shorter than written`);
          checksum.update(chunk.subarray(0, bytesRead));
          await out.write(chunk, 0, bytesRead, head.length + at);
          at += bytesRead;
        }
        await out.write(checksum.digest(), 0, 32, head.length + dataLength);
        await out.sync();
      } finally {
        await out.close();
      }
      await rename(tmpPath, output);
      const summary: DataArchiveSummary = {
        output: options.output,
        inodes: source.tables.inodes.length,
        entries: source.tables.entries.length,
        files: source.tables.inodes.filter((inode) => inode.type === 'file').length,
        blocks: layer.spans.length,
        uncompressedBytes: layer.uncompressedSize,
        dataBytes: dataLength,
        archiveBytes: head.length + dataLength + 32,
      };
      logger.info('archive written', { ...summary });
      return summary;
    } finally {
      await dataFile.close();
    }
  } catch (error) {
    throw ioError(`cannot write ${options.output}`, error);
  } finally {
    await rm(dataPath, { force: true });
    await rm(tmpPath, { force: true });
  }
}
