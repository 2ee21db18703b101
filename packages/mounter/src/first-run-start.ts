// Starts the first-run techniques of one mount (first-run.ts): the entrypoint's files once
// mounted, sibling fetch-ahead on reads; logs what they did and the fetch scheduling at stop.
import type { Inode } from '@clip/archive-format';
import type { LayerReader } from '@clip/read-engine';
import { parentOf, type MetadataTable } from '@clip/native-fuse';
import type { Logger } from '@clip/shared';
import type { MountableArchive } from './archive-view.js';
import { prefetchEntrypoint } from './entrypoint-prefetch.js';
import type { FirstRunTechniques } from './first-run.js';
import { SiblingAhead } from './sibling-ahead.js';

export interface FirstRun {
  /** The mount is up: start what runs once. */
  mounted(): void;
  /** After each successful read of a file. */
  onRead(inode: Inode): void;
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
  return {
    mounted() {
      if (!guessing || !techniques.entrypoint) return;
      const started = performance.now();
      void prefetchEntrypoint({ archive, reader, logger, signal }).then((result) =>
        logger.info('entrypoint prefetch finished', {
          files: result.paths.length,
          bytes: result.bytes,
          failed: result.failed,
          ms: Math.round(performance.now() - started),
          paths: result.paths.join(','),
        }),
      );
    },
    onRead(inode) {
      siblings?.observe(inode);
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
      });
    },
  };
}
