// Decoded spans in memory, least recently used out first, bounded in bytes.
import { LRUCache } from 'lru-cache';
import type { SpanCache } from '../layer-reader.js';

/**
 * What a cached span keeps alive: a partly decoded span is a view of a buffer that grows as the span
 * is extended, so its whole backing store counts (small pooled buffers count by length).
 */
function chargedSize(value: Buffer): number {
  return Math.max(1, value.length >= 4096 ? Math.max(value.length, value.buffer.byteLength) : value.length);
}

export class MemorySpanCache implements SpanCache {
  readonly #lru: LRUCache<string, Buffer>;

  constructor(maxBytes: number) {
    this.#lru = new LRUCache<string, Buffer>({
      maxSize: Math.max(1, maxBytes),
      // Spans larger than the whole cache are simply not kept.
      maxEntrySize: Math.max(1, maxBytes),
      sizeCalculation: chargedSize,
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
