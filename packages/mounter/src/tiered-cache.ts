// Memory in front of disk: a disk hit is promoted to memory; a store goes to both.
// A span in memory shorter than the caller needs does not hide a longer one on disk.
// Counts hits and misses per tier for the metrics.
import type { SpanCache } from '@clip/read-engine';
import type { MountMetrics } from './metrics.js';

export class TieredSpanCache implements SpanCache {
  readonly #memory: SpanCache | undefined;
  readonly #disk: SpanCache | undefined;
  readonly #metrics: MountMetrics;

  constructor(memory: SpanCache | undefined, disk: SpanCache | undefined, metrics: MountMetrics) {
    this.#memory = memory;
    this.#disk = disk;
    this.#metrics = metrics;
  }

  get(key: string, minLength = 0): Buffer | undefined | Promise<Buffer | undefined> {
    const inMemory = this.#memory?.get(key, minLength);
    if (inMemory instanceof Promise) return inMemory.then((value) => this.#afterMemory(key, minLength, value));
    return this.#afterMemory(key, minLength, inMemory);
  }

  #afterMemory(key: string, minLength: number, inMemory: Buffer | undefined): Buffer | undefined | Promise<Buffer | undefined> {
    if (inMemory && (inMemory.length >= minLength || !this.#disk)) {
      this.#metrics.add('memoryCacheHits');
      return inMemory;
    }
    if (this.#memory) this.#metrics.add('memoryCacheMisses');
    if (!this.#disk) return undefined;
    // Only a longer span than memory's is worth reading (and verifying) from disk.
    return this.#fromDisk(key, inMemory ? inMemory.length + 1 : 0).then((onDisk) =>
      onDisk && (!inMemory || onDisk.length > inMemory.length) ? onDisk : inMemory,
    );
  }

  async set(key: string, value: Buffer): Promise<void> {
    await this.#memory?.set(key, value);
    await this.#disk?.set(key, value);
  }

  async delete(key: string): Promise<void> {
    await this.#memory?.delete?.(key);
    await this.#disk?.delete?.(key);
  }

  async #fromDisk(key: string, minLength: number): Promise<Buffer | undefined> {
    if (!this.#disk) return undefined;
    const value = await this.#disk.get(key, minLength);
    this.#metrics.add(value ? 'diskCacheHits' : 'diskCacheMisses');
    if (value) await this.#memory?.set(key, value);
    return value;
  }
}
