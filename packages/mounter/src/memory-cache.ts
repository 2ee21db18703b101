// Decoded blocks in memory, least recently used out first, bounded in bytes.
import { LRUCache } from 'lru-cache';
import type { BlockCache } from '@clip/shared/archive/layer-reader';

export class MemoryBlockCache implements BlockCache {
  readonly #lru: LRUCache<string, Buffer>;

  constructor(maxBytes: number) {
    this.#lru = new LRUCache<string, Buffer>({
      maxSize: Math.max(1, maxBytes),
      // Blocks larger than the whole cache are simply not kept.
      maxEntrySize: Math.max(1, maxBytes),
      sizeCalculation: (value) => Math.max(1, value.length),
    });
  }

  get(key: string): Buffer | undefined {
    return this.#lru.get(key);
  }

  set(key: string, value: Buffer): void {
    // A partial decode finishing late must not replace a longer one.
    const existing = this.#lru.peek(key);
    if (existing && existing.length >= value.length) return;
    this.#lru.set(key, value);
  }

  delete(key: string): void {
    this.#lru.delete(key);
  }

  get bytes(): number {
    return this.#lru.calculatedSize;
  }
}
