// Mutable counters behind ImageSource.stats().
import type { SourceStats } from './image-source.js';

export class StatsCounter {
  private readonly counts: SourceStats = { requests: 0, bytesReceived: 0, rangeRequests: 0, networkBytesReceived: 0 };

  constructor(private readonly network: boolean) {}

  request(): void {
    this.counts.requests++;
  }

  range(): void {
    this.counts.rangeRequests++;
  }

  received(bytes: number): void {
    this.counts.bytesReceived += bytes;
    if (this.network) this.counts.networkBytesReceived += bytes;
  }

  snapshot(): SourceStats {
    return { ...this.counts };
  }
}
