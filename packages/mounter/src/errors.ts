import { ClipError } from '@clip/shared';

/** A mountpoint that cannot be used (missing, not a directory, busy, stale). */
export class MountpointError extends ClipError {
  readonly mountpoint: string;
  constructor(mountpoint: string, message: string) {
    super('CLIP_E_MOUNTPOINT', message);
    this.mountpoint = mountpoint;
  }
}

/** The metrics server cannot listen on the address asked for (busy port, foreign address). */
export class MetricsListenError extends ClipError {
  constructor(address: string, reason: string) {
    super('CLIP_E_METRICS_LISTEN', `cannot serve metrics on ${address}: ${reason}`);
  }
}

/** The FUSE mount itself failed (mount(2), or fusermount3 without root). */
export class MountFailedError extends ClipError {
  readonly mountpoint: string;
  constructor(mountpoint: string, message: string) {
    super('CLIP_E_MOUNT', message);
    this.mountpoint = mountpoint;
  }
}
