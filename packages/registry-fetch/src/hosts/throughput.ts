// How fast the origin delivers to this worker, from the worker's own direct reads: bytes over
// the time at least one read was outstanding (concurrent reads are not double counted; small,
// latency-bound reads make it an underestimate, which only lengthens a cold cool-down). A cold
// pull-through cache fills a blob over the same origin link, so `bytes / rate` is about when
// its fill can have completed (RegistryHost.skipReason).
export class ThroughputEstimate {
  private bytes = 0;
  private busyMs = 0;
  private outstanding = 0;
  private busySince = 0;

  /** Below this many bytes measured the estimate is not trusted. */
  static readonly MIN_BYTES = 256 * 1024;

  begin(now = Date.now()): void {
    if (this.outstanding++ === 0) this.busySince = now;
  }

  end(bytes: number, now = Date.now()): void {
    this.bytes += bytes;
    if (--this.outstanding === 0) this.busyMs += now - this.busySince;
  }

  /** Bytes per millisecond, or undefined while too little was measured. */
  rate(now = Date.now()): number | undefined {
    const busy = this.busyMs + (this.outstanding > 0 ? now - this.busySince : 0);
    if (this.bytes < ThroughputEstimate.MIN_BYTES || busy <= 0) return undefined;
    return this.bytes / busy;
  }

  /** Milliseconds to move `bytes` at the measured rate (undefined when unknown). */
  timeFor(bytes: number): number | undefined {
    const rate = this.rate();
    return rate === undefined ? undefined : bytes / rate;
  }
}
