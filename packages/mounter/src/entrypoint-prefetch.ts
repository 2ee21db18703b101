// First run without a profile: what the image's command will load is known before it runs.
// The entrypoint (config Entrypoint + Cmd, PATH lookup inside the image), the interpreter of a
// `#!` script, the ELF program interpreter and every DT_NEEDED library (searched like ld.so,
// transitively) are fetched whole in the background right after mounting, at background
// priority: the workload's own reads still go first. Each level of the dependency tree is
// explored in parallel, and a file's fetch starts as soon as it is found.
import { posix } from 'node:path';
import type { Inode } from '@clip/archive-format';
import { resolveImagePath, type ReadPriority } from '@clip/read-engine';
import type { Logger } from '@clip/shared';
import type { MountableArchive } from './archive-view.js';
import { isElf, librarySearchPath, parseShebang, readElfDependencies } from './elf.js';
import type { Prefetcher } from './prefetch-list.js';

const DEFAULT_PATH = ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'];
/** Bounds on a guess: files and uncompressed bytes fetched. */
const MAX_FILES = 64;
const MAX_BYTES = 256 * 2 ** 20;
const HEAD_BYTES = 256;

export interface EntrypointReader extends Prefetcher {
  readFile(inode: Inode, offset: number, length: number, signal?: AbortSignal, priority?: ReadPriority): Promise<Buffer>;
}

export interface EntrypointPrefetchResult {
  /** Files fetched (image paths, symlinks resolved), in discovery order. */
  paths: string[];
  bytes: number;
  failed: number;
}

/** The command's program: argv[0] of Entrypoint + Cmd, looked up in the image's PATH. */
export function entrypointProgram(archive: Pick<MountableArchive, 'metadata' | 'lookup'>): string | undefined {
  const config = archive.metadata.imageConfig;
  const argv0 = [...(config.entrypoint ?? []), ...(config.cmd ?? [])][0];
  if (!argv0) return undefined;
  return findProgram(archive, argv0, config.env, config.workingDir);
}

function findProgram(archive: Pick<MountableArchive, 'lookup'>, name: string, env?: string[], workingDir?: string): string | undefined {
  if (name.includes('/')) return posix.resolve(workingDir || '/', name);
  const pathVar = env?.find((entry) => entry.startsWith('PATH='))?.slice(5);
  const dirs = pathVar ? pathVar.split(':').filter(Boolean) : DEFAULT_PATH;
  for (const dir of dirs) {
    const candidate = posix.join(posix.resolve('/', dir), name);
    if (resolveFile(archive, candidate)) return candidate;
  }
  return undefined;
}

function resolveFile(archive: Pick<MountableArchive, 'lookup'>, path: string): { path: string; inode: Inode } | undefined {
  try {
    const resolved = resolveImagePath(archive, path);
    return resolved.inode.type === 'file' && resolved.inode.data ? resolved : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Finds and fetches the entrypoint's files. Never rejects (a guess that fails costs nothing
 * but its bytes); stops at `signal`.
 */
export async function prefetchEntrypoint(options: {
  archive: MountableArchive;
  reader: EntrypointReader;
  logger: Logger;
  signal?: AbortSignal;
}): Promise<EntrypointPrefetchResult> {
  const { archive, reader, logger, signal } = options;
  const result: EntrypointPrefetchResult = { paths: [], bytes: 0, failed: 0 };
  const program = entrypointProgram(archive);
  if (!program) return result;
  const env = archive.metadata.imageConfig.env;
  const seen = new Set<number>();
  const fetches: Promise<void>[] = [];

  /** Starts fetching a file whole; returns its inode unless seen, over a bound or not a file. */
  const take = (path: string): { path: string; inode: Inode } | undefined => {
    const file = resolveFile(archive, path);
    if (!file || seen.has(file.inode.ino) || seen.size >= MAX_FILES || result.bytes + file.inode.size > MAX_BYTES) return undefined;
    seen.add(file.inode.ino);
    result.paths.push(file.path);
    result.bytes += file.inode.size;
    const { layer, offset } = file.inode.data!;
    fetches.push(
      reader
        .prefetchRanges([{ layer, offset, length: file.inode.size }], {
          concurrency: 4,
          ...(signal ? { signal } : {}),
        })
        .then(({ failed }) => {
          result.failed += failed;
        }),
    );
    return file;
  };

  /** What loading `file` will load next (paths, not yet resolved). */
  const explore = async (file: { path: string; inode: Inode }): Promise<string[]> => {
    const readAt = (offset: number, length: number) => reader.readFile(file.inode, offset, length, signal, 'background');
    const head = await readAt(0, HEAD_BYTES);
    const shebang = parseShebang(head);
    if (shebang) {
      const next = [shebang.interpreter];
      // `#!/usr/bin/env python3`: the program env runs, found in the image's PATH.
      if (posix.basename(shebang.interpreter) === 'env' && shebang.argument) {
        const name = shebang.argument.split(/\s+/).find((word) => !word.startsWith('-'));
        const found = name ? findProgram(archive, name, env) : undefined;
        if (found) next.push(found);
      }
      return next;
    }
    if (!isElf(head)) return [];
    const elf = await readElfDependencies(readAt);
    if (!elf) return [];
    const next = elf.interpreter ? [elf.interpreter] : [];
    const dirs = librarySearchPath(elf, posix.dirname(file.path));
    for (const name of elf.needed) {
      if (name.includes('/')) next.push(posix.resolve(posix.dirname(file.path), name));
      else {
        const dir = dirs.find((candidate) => resolveFile(archive, posix.join(candidate, name)));
        if (dir) next.push(posix.join(dir, name));
      }
    }
    return next;
  };

  let level = [take(program)].filter((file) => file !== undefined);
  while (level.length > 0 && !signal?.aborted) {
    const found = await Promise.all(
      level.map((file) =>
        explore(file).catch((error: unknown) => {
          logger.debug('entrypoint prefetch: cannot read', { path: file.path, error: (error as Error).message });
          return [];
        }),
      ),
    );
    level = found.flat().flatMap((path) => take(path) ?? []);
  }
  await Promise.all(fetches);
  return result;
}
