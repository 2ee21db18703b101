// Switches for the first-run techniques (a mount without a prefetch list), so the bench can
// measure each one's gain: `CLIP_FIRST_RUN` lists the ones to turn on or off, e.g.
// `CLIP_FIRST_RUN=-siblings` (defaults minus one), `CLIP_FIRST_RUN=none,priority` (only one),
// `CLIP_FIRST_RUN=all`. Internal: not a CLI option, the defaults are what measured best.
import { UsageError } from '@clip/shared';

export interface FirstRunTechniques {
  /** Demand reads before background fetches (fetch-scheduler.ts in the read engine). */
  priority: boolean;
  /** Touching ranges of one blob queued together go out as one request. */
  coalesce: boolean;
  /** Fetch the entrypoint's program, interpreter and libraries at mount (entrypoint-prefetch.ts). */
  entrypoint: boolean;
  /** A file's first read warms its small siblings (sibling-ahead.ts). */
  siblings: boolean;
  /** The first read of a shared object (`*.so*`, e.g. a dlopen) fetches the libraries it needs. */
  libraries: boolean;
}

export const FIRST_RUN_TECHNIQUES = ['priority', 'coalesce', 'entrypoint', 'siblings', 'libraries'] as const;

export const DEFAULT_FIRST_RUN: Readonly<FirstRunTechniques> = {
  priority: true,
  coalesce: false,
  entrypoint: true,
  siblings: false,
  libraries: false,
};

export function parseFirstRun(text: string | undefined): FirstRunTechniques {
  const result = { ...DEFAULT_FIRST_RUN };
  for (const raw of (text ?? '').split(',')) {
    const word = raw.trim();
    if (word === '' || word === 'default') continue;
    if (word === 'none' || word === 'all') {
      for (const name of FIRST_RUN_TECHNIQUES) result[name] = word === 'all';
      continue;
    }
    const on = !word.startsWith('-');
    const name = word.replace(/^[-+]/, '');
    if (!(FIRST_RUN_TECHNIQUES as readonly string[]).includes(name)) {
      throw new UsageError(
        `CLIP_FIRST_RUN: unknown technique ${JSON.stringify(name)} (known: ${FIRST_RUN_TECHNIQUES.join(', ')}, none, all)`,
      );
    }
    result[name as keyof FirstRunTechniques] = on;
  }
  return result;
}
