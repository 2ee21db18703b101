// How the WINDOWS section stores a checkpoint window: raw deflate (RFC 1951), level 6. One
// definition for the encoder and for writers that compress windows ahead of it (the indexer
// deflates them on the thread pool while it scans), so both give the same bytes.
import { deflateRaw, deflateRawSync } from 'node:zlib';

const OPTIONS = { level: 6 } as const;

export function storeWindow(window: Uint8Array): Uint8Array {
  return deflateRawSync(window, OPTIONS);
}

/** storeWindow on the libuv thread pool: the same bytes, without blocking the calling thread. */
export function storeWindowAsync(window: Uint8Array): Promise<Uint8Array> {
  return new Promise((resolve, reject) => deflateRaw(window, OPTIONS, (error, stored) => (error ? reject(error) : resolve(stored))));
}
