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
 * Walks what loading files will load (a `#!` interpreter, ELF interpreter and DT_NEEDED
 * libraries, transitively, each level in parallel) and fetches each file found in the
 * background, whole up to `maxFileBytes`. One walker per mount: a file is fetched once.
 */
export class DependencyPrefetcher {
  readonly #archive: MountableArchive;
  readonly #reader: EntrypointReader;
  readonly #logger: Logger;
  readonly #signal: AbortSignal | undefined;
  readonly #maxFileBytes: number;
  readonly #seen = new Set<number>();
  readonly #fetches = new Set<Promise<void>>();
  readonly result: EntrypointPrefetchResult = { paths: [], bytes: 0, failed: 0 };

  constructor(options: {
    archive: MountableArchive;
    reader: EntrypointReader;
    logger: Logger;
    signal?: AbortSignal;
    maxFileBytes?: number;
  }) {
    this.#archive = options.archive;
    this.#reader = options.reader;
    this.#logger = options.logger;
    this.#signal = options.signal;
    this.#maxFileBytes = options.maxFileBytes ?? MAX_BYTES;
  }

  /** Whether a file (by inode) was already taken. */
  has(ino: number): boolean {
    return this.#seen.has(ino);
  }

  /** Fetches `paths` and what they load; settles when the walk and its fetches have. */
  async walk(paths: readonly string[]): Promise<void> {
    let level = paths.flatMap((path) => this.#take(path) ?? []);
    while (level.length > 0 && !this.#signal?.aborted) {
      const found = await Promise.all(
        level.map((file) =>
          this.#explore(file).catch((error: unknown) => {
            this.#logger.debug('dependency prefetch: cannot read', { path: file.path, error: (error as Error).message });
            return [];
          }),
        ),
      );
      level = found.flat().flatMap((path) => this.#take(path) ?? []);
    }
    while (this.#fetches.size > 0) await Promise.all([...this.#fetches]);
  }

  /** Starts fetching a file; returns it unless seen, over a bound or not a file. */
  #take(path: string): { path: string; inode: Inode } | undefined {
    const file = resolveFile(this.#archive, path);
    const result = this.result;
    if (!file || this.#seen.has(file.inode.ino) || this.#seen.size >= MAX_FILES) return undefined;
    const length = Math.min(file.inode.size, this.#maxFileBytes);
    if (result.bytes + length > MAX_BYTES) return undefined;
    this.#seen.add(file.inode.ino);
    result.paths.push(file.path);
    result.bytes += length;
    const { layer, offset } = file.inode.data!;
    const signal = this.#signal;
    const fetch = this.#reader
      .prefetchRanges([{ layer, offset, length }], { concurrency: 4, ...(signal ? { signal } : {}) })
      .then(({ failed }) => {
        result.failed += failed;
      });
    this.#fetches.add(fetch);
    void fetch.finally(() => this.#fetches.delete(fetch));
    return file;
  }

  /** What loading `file` will load next (paths, not yet resolved). */
  async #explore(file: { path: string; inode: Inode }): Promise<string[]> {
    const archive = this.#archive;
    const readAt = (offset: number, length: number) => this.#reader.readFile(file.inode, offset, length, this.#signal, 'background');
    const head = await readAt(0, HEAD_BYTES);
    const shebang = parseShebang(head);
    if (shebang) {
      const next = [shebang.interpreter];
      // `#!/usr/bin/env python3`: the program env runs, found in the image's PATH.
      if (posix.basename(shebang.interpreter) === 'env' && shebang.argument) {
        const name = shebang.argument.split(/\s+/).find((word) => !word.startsWith('-'));
        const found = name ? findProgram(archive, name, archive.metadata.imageConfig.env) : undefined;
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
  /** Shared with other walks of the same mount (default: a new one). */
  walker?: DependencyPrefetcher;
}): Promise<EntrypointPrefetchResult> {
  const walker = options.walker ?? new DependencyPrefetcher(options);
  const program = entrypointProgram(options.archive);
  if (program) await walker.walk([program]);
  return walker.result;
}
