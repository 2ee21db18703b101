// LayerFetcher: the one interface for reading byte ranges of an image's layers, whether they
// come from a registry (storage-source.ts) or the archive's own DATA section (archive-location.ts).
// It is FetchRange (the read engine's byte-range function) plus the source's name, stats and close.
import type { FetchRange } from '@clip/archive-format';
import type { HostStats } from '@clip/registry-fetch';

/** Reads byte ranges of an image's layers; `close` is called on unmount. */
export interface LayerFetcher {
  fetchRange: FetchRange;
  /** Where bytes come from, for logs: the archive itself or `registry/repo@digest`. */
  reference?: string;
  /** Per registry host counters when reading through hosts.toml mirrors. */
  hostStats?: () => HostStats[];
  /** Prometheus text the fetcher adds to /metrics (per registry host counters). */
  prometheus?(): string;
  close?(): Promise<void>;
}
