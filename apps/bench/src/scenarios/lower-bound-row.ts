// The cold-start table's lower bound: a row whose "clip" value is the link time of the
// compressed bytes the workload reads (bytes / rate + one RTT), and clip's ratio to it on
// every other row. Its ratio against full pull + unpack is the best any lazy start could reach.
import { linkSeconds } from '../lower-bound/extent.js';
import { computeLowerBound } from '../lower-bound/lower-bound.js';
import { finishRow, skippedRow, type ResultRow } from '../report/model.js';
import type { BenchContext, PublishedImage } from './context.js';

export async function lowerBoundRow(
  context: BenchContext,
  image: PublishedImage,
  recordFile: string | undefined,
  base: Omit<ResultRow, 'skipped'>,
): Promise<ResultRow> {
  if (!recordFile || !image.archive) return skippedRow(base, 'no recorded reads (the record run failed)');
  try {
    const bound = await computeLowerBound(image.bench.image, image.archive, recordFile);
    const profile = context.link.profile;
    const seconds = linkSeconds(bound.bytes, profile);
    const rate = profile.rateMbit === undefined ? 'unlimited rate' : `${profile.rateMbit} Mbit/s`;
    return finishRow({
      ...base,
      clip: seconds,
      clipBytes: bound.bytes,
      note: `${(bound.readBytes / 1e6).toFixed(1)} MB read from ${bound.files} files → ${(bound.bytes / 1e6).toFixed(1)} MB compressed at deflate-block checkpoints; time = bytes at ${rate} + ${profile.rttMs} ms RTT`,
      details: { ...base.details, lowerBound: bound, linkSeconds: seconds },
    });
  } catch (error) {
    return skippedRow(base, `lower bound failed: ${(error as Error).message.slice(0, 400)}`);
  }
}

/** clip's bytes and time over the lower bound's, on every measured row but `exclude` (e.g. warm cache: no download). */
export function annotateWithLowerBound(rows: ResultRow[], bound: ResultRow, exclude: readonly string[]): ResultRow[] {
  if (bound.skipped || bound.clip === undefined || !bound.clipBytes) return rows;
  return rows.map((row) => {
    if (row === bound || row.skipped || exclude.includes(row.variant) || row.clip === undefined || row.clipBytes === undefined) return row;
    const bytesRatio = row.clipBytes / bound.clipBytes!;
    const timeRatio = row.clip / bound.clip!;
    const text = `${bytesRatio.toFixed(2)}× the lower bound's bytes, ${timeRatio.toFixed(1)}× its link time`;
    return {
      ...row,
      note: row.note ? `${row.note}; ${text}` : text,
      details: {
        ...row.details,
        lowerBound: { bytes: bound.clipBytes, seconds: bound.clip, bytesRatio, timeRatio },
      },
    };
  });
}
