// What every scenario gets: the link, the clip CLI adapter, a scratch directory and the mode.
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { ClipCli } from '../clip/cli.js';
import type { BenchImage } from '../images/catalog.js';
import type { Link } from '../net/link.js';
import type { ResultRow } from '../report/model.js';

export interface BenchContext {
  quick: boolean;
  repetitions: number;
  workDir: string;
  link: Link;
  clip: ClipCli;
  log(message: string): void;
}

/** An image pushed to the registry and (when clip index works) indexed by worker A. */
export interface PublishedImage {
  bench: BenchImage;
  /** Reference runtime workers use (through the proxy). */
  clientRef: string;
  /** Archive built from the local layout with the client reference as storage, if clip index is available. */
  archive?: string;
  archiveBytes?: number;
  /** The same image indexed with DENSE_SPAN_SIZE spans (full mode only): fewer bytes per first touch, bigger archive. */
  denseArchive?: string;
  denseArchiveBytes?: number;
  indexSkipped?: string;
}

/** Span size of the dense variant (the default is 4 MiB). */
export const DENSE_SPAN_SIZE = '1MiB';

export type Scenario = (context: BenchContext, image: PublishedImage) => Promise<ResultRow[]>;

let counter = 0;
/** A fresh, empty scratch directory (a "fresh worker"). */
export async function scratch(context: BenchContext, label: string): Promise<string> {
  const dir = join(context.workDir, `${label}-${++counter}`);
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  return dir;
}
