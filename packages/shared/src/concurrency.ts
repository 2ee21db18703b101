// One way to run async work over a list with a bound on how much runs at once (uploads,
// mirror fills, background span fetches, checkpoint scans): a few workers take the next item
// until the list is done. Ordered, pipelined results need something else (the indexer's
// boundedAll hands out one promise per item).

/**
 * Runs `task` for every item, at most `limit` at once, in list order. Resolves when all are
 * done; on the first failure no further item is started and that error is thrown once the
 * running ones have settled. Items are not started after `signal` aborts (resolves normally).
 */
export async function forEachConcurrent<T>(
  items: Iterable<T>,
  limit: number,
  task: (item: T) => Promise<void>,
  options: { signal?: AbortSignal } = {},
): Promise<void> {
  const queue = [...items];
  let next = 0;
  let failure: { error: unknown } | undefined;
  const worker = async () => {
    while (next < queue.length && !failure && !options.signal?.aborted) {
      const item = queue[next++] as T;
      try {
        await task(item);
      } catch (error) {
        failure ??= { error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(Math.floor(limit), queue.length)) }, worker));
  if (failure) throw failure.error;
}
