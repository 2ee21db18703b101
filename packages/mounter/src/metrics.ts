// Counters and a read-latency histogram for one mount; rendered as Prometheus text for
// `--metrics host:port` and as a JSON summary on exit.

/** Upper bounds (seconds) of the read-latency buckets. */
const LATENCY_BUCKETS = [0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30];

export interface MetricsSnapshot {
  fetchRequests: number;
  fetchBytes: number;
  fetchErrors: number;
  memoryCacheHits: number;
  memoryCacheMisses: number;
  diskCacheHits: number;
  diskCacheMisses: number;
  diskCacheCorrupt: number;
  digestMismatches: number;
  windowFetchRequests: number;
  windowFetchBytes: number;
  lookups: number;
  getattrs: number;
  readdirs: number;
  reads: number;
  readBytes: number;
  readErrors: number;
  readaheadSpans: number;
  prefetchedFiles: number;
  profileFiles: number;
  prefetchBytes: number;
  prefetchUsedBytes: number;
  prefetchWastedBytes: number;
  readLatency: { buckets: Array<{ le: number | '+Inf'; count: number }>; sum: number; count: number };
}

type Counter = Exclude<keyof MetricsSnapshot, 'readLatency'>;
/** Counters kept outside JS (the FUSE addon's), read at snapshot time. */
type ExternalCounters = () => Partial<Record<Counter, number>>;

const HELP: Record<Counter, string> = {
  fetchRequests: 'Range requests sent to the registry',
  fetchBytes: 'Compressed bytes fetched from the registry',
  fetchErrors: 'Range requests that failed',
  memoryCacheHits: 'Decoded spans served from memory',
  memoryCacheMisses: 'Decoded spans not in memory',
  diskCacheHits: 'Decoded spans served from the disk cache',
  diskCacheMisses: 'Decoded spans not in the disk cache',
  diskCacheCorrupt: 'Disk cache entries dropped because they failed verification',
  digestMismatches: 'Fetched pieces and windows whose digest did not match the archive',
  windowFetchRequests: 'Range requests for checkpoint windows (archives with external windows; also in fetch_requests)',
  windowFetchBytes: 'Checkpoint window bytes fetched from the windows blob (also in fetch_bytes)',
  lookups: 'FUSE lookup requests (answered by the FUSE addon; the kernel caches entries)',
  getattrs: 'FUSE getattr requests (answered by the FUSE addon; the kernel caches attributes)',
  readdirs: 'FUSE readdir(plus) requests (answered by the FUSE addon)',
  reads: 'FUSE read requests',
  readBytes: 'Bytes returned by FUSE reads',
  readErrors: 'FUSE reads that failed (EIO)',
  readaheadSpans: 'Spans fetched by sequential readahead',
  prefetchedFiles: 'Files fetched from the prefetch list',
  profileFiles: 'Files listed by the access profile applied to this mount',
  prefetchBytes: 'File bytes the prefetch list or profile fetched ahead',
  prefetchUsedBytes: 'Prefetched file bytes the workload read so far',
  prefetchWastedBytes: 'Prefetched file bytes not read (yet; final at unmount)',
};

function snakeCase(name: string): string {
  return name.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

export class MountMetrics {
  readonly #counters = new Map<Counter, number>();
  readonly #bucketCounts = new Array<number>(LATENCY_BUCKETS.length + 1).fill(0);
  #latencySum = 0;
  #latencyCount = 0;
  #external: ExternalCounters | undefined;
  readonly #computed: ExternalCounters[] = [];

  add(counter: Counter, amount = 1): void {
    this.#counters.set(counter, (this.#counters.get(counter) ?? 0) + amount);
  }

  /** Counters of the FUSE session; they replace same-named local ones in snapshots. */
  attachExternal(counters: ExternalCounters): void {
    this.#external = counters;
  }

  /** Counters computed at snapshot time (e.g. prefetch usage). */
  addComputed(counters: ExternalCounters): void {
    this.#computed.push(counters);
  }

  observeReadSeconds(seconds: number): void {
    let index = LATENCY_BUCKETS.findIndex((bound) => seconds <= bound);
    if (index < 0) index = LATENCY_BUCKETS.length;
    this.#bucketCounts[index]!++;
    this.#latencySum += seconds;
    this.#latencyCount++;
  }

  snapshot(): MetricsSnapshot {
    const external = Object.assign(
      {},
      ...this.#computed.map((counters) => counters()),
      this.#external?.() ?? {},
    ) as ReturnType<ExternalCounters>;
    const counters = Object.fromEntries(
      (Object.keys(HELP) as Counter[]).map((name) => [name, external[name] ?? this.#counters.get(name) ?? 0]),
    ) as Record<Counter, number>;
    let cumulative = 0;
    const buckets = this.#bucketCounts.map((count, index) => {
      cumulative += count;
      return { le: LATENCY_BUCKETS[index] ?? ('+Inf' as const), count: cumulative };
    });
    return { ...counters, readLatency: { buckets, sum: this.#latencySum, count: this.#latencyCount } };
  }

  /** Prometheus text exposition format 0.0.4. */
  prometheus(): string {
    const snap = this.snapshot();
    const lines: string[] = [];
    for (const name of Object.keys(HELP) as Counter[]) {
      const metric = `clip_${snakeCase(name)}_total`;
      lines.push(`# HELP ${metric} ${HELP[name]}`, `# TYPE ${metric} counter`, `${metric} ${snap[name]}`);
    }
    const hist = 'clip_read_latency_seconds';
    lines.push(`# HELP ${hist} Latency of FUSE read requests`, `# TYPE ${hist} histogram`);
    for (const bucket of snap.readLatency.buckets) lines.push(`${hist}_bucket{le="${bucket.le}"} ${bucket.count}`);
    lines.push(`${hist}_sum ${snap.readLatency.sum}`, `${hist}_count ${snap.readLatency.count}`);
    return `${lines.join('\n')}\n`;
  }
}
