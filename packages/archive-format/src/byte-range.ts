// The one interface for reading bytes of a layer: the layer reader asks it for compressed
// ranges; registries (HTTP Range), archive files and data-carrying archives implement it.
import type { Digest } from '@clip/shared';

/** Fetches bytes [start, end) of a layer blob (end exclusive). */
export type FetchRange = (layerDigest: Digest, start: number, end: number, signal?: AbortSignal) => Promise<Uint8Array>;
