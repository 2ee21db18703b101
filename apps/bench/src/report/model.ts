// The result model shared by scenarios and reports.
import { ratio } from '../util/stats.js';

export interface ResultRow {
  scenario: string;
  /** e.g. "cold cache", "warm cache", "prefetch". */
  variant: string;
  image: string;
  /** Link profile name, or "local" when no network is involved. */
  profile: string;
  unit: 's' | 'ms' | 'MB/s' | 'MB';
  /** Which direction is better for `baseline`/`clip` values. */
  better: 'lower' | 'higher';
  baselineLabel: string;
  baseline?: number;
  clip?: number;
  /** How many times better clip is than the baseline (>1: clip wins). */
  ratio?: number;
  baselineBytes?: number;
  clipBytes?: number;
  baselineRequests?: number;
  /** HTTP requests with a Range header made by clip. */
  clipRangeRequests?: number;
  clipRequests?: number;
  skipped?: string;
  /** One short line for the table: a goal, a share, what the ratio means when not obvious. */
  note?: string;
  details?: Record<string, unknown>;
}

export function finishRow(row: ResultRow): ResultRow {
  const value = row.better === 'lower' ? ratio(row.baseline, row.clip) : ratio(row.clip, row.baseline);
  return value === undefined ? row : { ...row, ratio: value };
}

export function skippedRow(base: Omit<ResultRow, 'skipped'>, reason: string): ResultRow {
  return { ...base, skipped: reason };
}
