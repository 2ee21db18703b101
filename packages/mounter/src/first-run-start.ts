// Starts the first-run techniques of one mount (first-run.ts): the entrypoint's files once
// mounted, sibling fetch-ahead on reads; logs what they did and the fetch scheduling at stop.
import type { Inode } from '@clip/archive-format';
import type { LayerReader } from '@clip/read-engine';
import { parentOf, type MetadataTable } from '@clip/native-fuse';
import type { Logger } from '@clip/shared';
import type { MountableArchive } from './archive-view.js';
import { DependencyPrefetcher, prefetchEntrypoint } from './entrypoint-prefetch.js';
import { pathOf } from './metadata-table.js';
import type { FirstRunTechniques } from './first-run.js';
import { SiblingAhead } from './sibling-ahead.js';

/** Names ld.so loads: `libfoo.so`, `libfoo.so.6`, `_sqlite3.cpython-311-x86_64-linux-gnu.so`. */
const SHARED_OBJECT = /\.so(\.\d+)*$/;
/** A file the walker finds is fetched whole up to this (a loader touches part of a big library). */
const MAX_LIBRARY_BYTES = 16 * 2 ** 20;

export interface FirstRun {
  /** The mount is up: start what runs once. */
  mounted(): void;
  /** After each successful read of a file. */
  onRead(inode: Inode, position: number): void;
  /** Unmounting (the signal given at start stops the fetches; this logs). */
  stop(): void;
}

export function startFirstRun(options: {
  archive: MountableArchive;
  reader: LayerReader;
  table: MetadataTable;
  logger: Logger;
  techniques: FirstRunTechniques;
  /** A prefetch list (a profile) says what to fetch better than any guess. */
  hasPrefetchList: boolean;
  signal: AbortSignal;
}): FirstRun {
  const { archive, reader, table, logger, techniques, signal } = options;
  const guessing = !options.hasPrefetchList;
  const siblings =
    guessing && techniques.siblings
      ? new SiblingAhead({ archive, reader, parentOf: (ino) => parentOf(table, ino), logger, signal })
      : undefined;
  // One walker: a library the entrypoint needs is not fetched again for a dlopen.
  const walker = new DependencyPrefetcher({ archive, reader, logger, signal, maxFileBytes: MAX_LIBRARY_BYTES });
  const libraries = guessing && techniques.libraries;
  let libraryWalks = 0;
  return {
    mounted() {
      if (!guessing || !techniques.entrypoint) return;
      const started = performance.now();
      void prefetchEntrypoint({ archive, reader, logger, signal, walker }).then((result) =>
        logger.info('entrypoint files fetched', {
          files: result.paths.length,
          bytes: result.bytes,
          failed: result.failed,
          ms: Math.round(performance.now() - started),
          paths: result.paths.join(','),
        }),
      );
    },
    onRead(inode, position) {
      siblings?.observe(inode);
      if (!libraries || position !== 0 || walker.has(inode.ino) || inode.size < 64) return;
      const path = pathOf(archive, table, inode.ino);
      if (!path || !SHARED_OBJECT.test(path)) return;
      libraryWalks++;
      void walker.walk([path]);
    },
    stop() {
      const stats = reader.schedulerStats;
      logger.info('fetch scheduling', {
        techniques: Object.entries(techniques)
          .filter(([, on]) => on)
          .map(([name]) => name)
          .join(','),
        demand_requests: stats.demandRequests,
        background_requests: stats.backgroundRequests,
        promoted: stats.promoted,
        coalesced: stats.coalesced,
        ...(siblings ? { sibling_files: siblings.stats.files, sibling_bytes: siblings.stats.bytes } : {}),
        ...(libraries
          ? { library_walks: libraryWalks, dependency_files: walker.result.paths.length, dependency_bytes: walker.result.bytes }
          : {}),
      });
    },
  };
}
