// What the snapshotter needs from a pool of shared image mounts: one lazy clip mount per
// image, held by the snapshots that need it, stopped when the last one releases it. The
// implementation is runtime-pool.ts (@clip/runtime's durable pool of detached `clip mount`
// processes, so a restart of the snapshotter does not take containers' root file systems
// with it, and a mount whose process is gone is started again on the next acquire).

export interface ImageToMount {
  imageRef: string;
  manifestDigest: string;
  /** Verified local archive of the image. */
  archivePath: string;
}

export interface ImageMountLease {
  imageKey: string;
  mountpoint: string;
  manifestDigest: string;
  reused: boolean;
  release(): Promise<void>;
}

export interface ImageMountInfo {
  imageKey: string;
  imageRef: string;
  mountpoint: string;
  pid: number;
  holders: string[];
  /** `host:port` of the mount's Prometheus metrics. */
  metrics?: string;
}

/** What the snapshotter needs from a pool of shared image mounts. */
export interface ImageMountPool {
  acquire(image: ImageToMount, holder: string): Promise<ImageMountLease>;
  release(imageKey: string, holder: string): Promise<void>;
  list(): Promise<ImageMountInfo[]>;
}
