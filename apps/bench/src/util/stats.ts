// Small statistics helpers: repeated timings are summarised by their median.
export function median(values: number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** baseline / clip, or undefined when either side is missing or zero. */
export function ratio(baseline: number | undefined, clip: number | undefined): number | undefined {
  if (baseline === undefined || clip === undefined || !Number.isFinite(baseline) || !Number.isFinite(clip) || clip <= 0 || baseline <= 0)
    return undefined;
  return baseline / clip;
}

export async function timed<T>(fn: () => Promise<T>): Promise<{ value: T; seconds: number }> {
  const started = performance.now();
  const value = await fn();
  return { value, seconds: (performance.now() - started) / 1000 };
}
