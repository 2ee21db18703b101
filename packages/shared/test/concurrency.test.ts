import { describe, expect, it } from 'vitest';
import { forEachConcurrent } from '../src/concurrency.js';

const tick = () => new Promise((resolve) => setTimeout(resolve, 1));

describe('forEachConcurrent', () => {
  it('runs every item, never more than the limit at once, starting in list order', async () => {
    let running = 0;
    let most = 0;
    const started: number[] = [];
    await forEachConcurrent([1, 2, 3, 4, 5, 6, 7], 3, async (item) => {
      started.push(item);
      most = Math.max(most, ++running);
      await tick();
      running--;
    });
    expect(started).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(most).toBe(3);
  });

  it('starts nothing after the first failure and throws it once the running ones settle', async () => {
    const started: number[] = [];
    let settled = 0;
    const error = await forEachConcurrent([1, 2, 3, 4, 5, 6], 2, async (item) => {
      started.push(item);
      await tick();
      settled++;
      if (item === 2) throw new Error('item 2 failed');
    }).catch((e: unknown) => e);
    expect((error as Error).message).toBe('item 2 failed');
    expect(started).toEqual([1, 2, 3]);
    expect(settled).toBe(3);
  });

  it('starts nothing after the signal aborts; an empty list and a limit above its length are fine', async () => {
    const stop = new AbortController();
    const started: number[] = [];
    await forEachConcurrent(
      [1, 2, 3, 4],
      1,
      async (item) => {
        started.push(item);
        if (item === 2) stop.abort();
      },
      { signal: stop.signal },
    );
    expect(started).toEqual([1, 2]);
    await forEachConcurrent([], 4, async () => {
      throw new Error('never called');
    });
    const all: string[] = [];
    await forEachConcurrent(new Set(['a', 'b']), 10, async (item) => void all.push(item));
    expect(all).toEqual(['a', 'b']);
  });
});
