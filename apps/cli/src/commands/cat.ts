// `clip cat <file.clip> <path>`: stream one file of the image to stdout, fetching only the
// byte ranges of its layer that hold it (no FUSE). Symlinks are followed inside the image.
import type { Command } from 'commander';
import { once } from 'node:events';
import { createLogger, NotAFileError, UsageError } from '@clip/shared';
import type { LayerFetcher } from '@clip/mounter';
import type { Inode } from '@clip/archive-format';
import { addTrustOptions, trustOptionsFrom, type TrustFlags } from '../archive-trust/cli-options.js';
import { HOSTS_DIR_HELP, hostsDirOption } from '../hosts-option.js';

/** Bytes asked of the reader per step: spans are decoded once and sliced from the cache. */
const CHUNK = 1 << 20;
const CACHE_BYTES = 64 << 20;

interface CatOptions extends TrustFlags {
  insecure?: boolean;
  hostsDir?: string;
  readTimeout?: string;
}

export function register(program: Command): void {
  const command = program
    .command('cat')
    .description('write a file of the image to stdout, fetching only the layer bytes it needs')
    .argument('<archive>', '.clip archive (file or http(s) URL), or a registry reference (its archive is loaded as by mount)')
    .argument('<path>', 'absolute path inside the image')
    .option('--insecure', 'allow plain HTTP / unverified TLS to a non-loopback registry')
    .option('--read-timeout <seconds>', 'per-request registry timeout', '30')
    .option('--hosts-dir <dir>', HOSTS_DIR_HELP);
  addTrustOptions(command).action(async (archivePath: string, path: string, options: CatOptions) => {
    const timeoutSeconds = Number(options.readTimeout);
    if (!(timeoutSeconds > 0)) throw new UsageError(`invalid --read-timeout ${JSON.stringify(options.readTimeout)}: expected seconds > 0`);
    const [{ LayerReader, resolveImagePath, MemorySpanCache }, { openArchiveFetcher, openArchiveLocation }, { resolveArchiveArgument }] =
      await Promise.all([import('@clip/read-engine'), import('@clip/mounter'), import('@clip/registry-fetch')]);
    const logger = createLogger();
    const insecure = options.insecure ?? false;
    const hosts = hostsDirOption(options);
    const location = await resolveArchiveArgument(archivePath, { logger, insecure, ...(await trustOptionsFrom(options)), ...hosts });
    const opened = await openArchiveLocation(location, { insecure, logger, timeoutMs: timeoutSeconds * 1000 });
    const archive = opened.archive;
    let inode: Inode;
    let fetcher: LayerFetcher;
    try {
      const found = resolveImagePath(archive, path.startsWith('/') ? path : `/${path}`);
      if (found.inode.type !== 'file')
        throw new NotAFileError(`${path} is a ${found.inode.type}${found.path !== path ? ` (${found.path})` : ''}, not a regular file`);
      inode = found.inode;
      fetcher = await openArchiveFetcher(opened, { insecure, logger, requestTimeoutMs: timeoutSeconds * 1000, ...hosts });
    } catch (error) {
      await opened.close();
      throw error;
    }
    try {
      // A small cache so consecutive chunks of one span decode it once.
      const reader = new LayerReader(archive, { fetchRange: fetcher.fetchRange, cache: new MemorySpanCache(CACHE_BYTES) });
      for (let offset = 0; offset < inode.size; offset += CHUNK) {
        const chunk = await reader.readFile(inode, offset, CHUNK);
        if (!process.stdout.write(chunk)) await once(process.stdout, 'drain');
      }
    } finally {
      await fetcher.close?.();
    }
  });
}
