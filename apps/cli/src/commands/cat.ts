// `clip cat <file.clip> <path>`: stream one file of the image to stdout, fetching only the
// byte ranges of its layer that hold it (no FUSE). Symlinks are followed inside the image.
import type { Command } from 'commander';
import { once } from 'node:events';
import { readArchiveFile } from '@clip/shared/archive/format';
import { LayerReader } from '@clip/shared/archive/layer-reader';
import { ClipError, UsageError } from '@clip/shared/errors';
import { createLogger } from '@clip/shared/log';
import { resolveImagePath } from '@clip/shared/read/resolve-path';
import { MemoryBlockCache } from '@clip/mounter/memory-cache';
import { openStorageFetcher } from '@clip/mounter/storage-source';

/** Bytes asked of the reader per step: spans are decoded once and sliced from the cache. */
const CHUNK = 1 << 20;
const CACHE_BYTES = 64 << 20;

interface CatOptions {
  insecure?: boolean;
  readTimeout?: string;
}

export function register(program: Command): void {
  program
    .command('cat')
    .description('write a file of the image to stdout, fetching only the layer bytes it needs')
    .argument('<archive>', '.clip archive')
    .argument('<path>', 'absolute path inside the image')
    .option('--insecure', 'allow plain HTTP / unverified TLS to a non-loopback registry')
    .option('--read-timeout <seconds>', 'per-request registry timeout', '30')
    .action(async (archivePath: string, path: string, options: CatOptions) => {
      const timeoutSeconds = Number(options.readTimeout);
      if (!(timeoutSeconds > 0)) throw new UsageError(`invalid --read-timeout ${JSON.stringify(options.readTimeout)}: expected seconds > 0`);
      const logger = createLogger();
      const archive = await readArchiveFile(archivePath);
      const { inode, path: resolved } = resolveImagePath(archive, path.startsWith('/') ? path : `/${path}`);
      if (inode.type !== 'file') throw new ClipError('CLIP_E_NOT_FILE', `${path} is a ${inode.type}${resolved !== path ? ` (${resolved})` : ''}, not a regular file`);
      const fetcher = await openStorageFetcher(archive, { insecure: options.insecure ?? false, logger, requestTimeoutMs: timeoutSeconds * 1000 });
      try {
        // A small cache so consecutive chunks of one span decode it once.
        const reader = new LayerReader(archive, { fetchRange: fetcher.fetchRange, cache: new MemoryBlockCache(CACHE_BYTES) });
        for (let offset = 0; offset < inode.size; offset += CHUNK) {
          const chunk = await reader.readFile(inode, offset, CHUNK);
          if (!process.stdout.write(chunk)) await once(process.stdout, 'drain');
        }
      } finally {
        await fetcher.close();
      }
    });
}
