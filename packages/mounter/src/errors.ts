import { ClipError } from '@clip/shared';

/** A mountpoint that cannot be used (missing, not a directory, busy, stale). */
export class MountpointError extends ClipError {
  readonly mountpoint: string;
  constructor(mountpoint: string, message: string) {
    super('CLIP_E_MOUNTPOINT', message);
    this.mountpoint = mountpoint;
  }
}
