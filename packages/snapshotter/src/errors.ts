// Errors of the snapshots service. Each carries the gRPC status containerd maps back to
// its errdefs (errdefs.FromGRPC): NOT_FOUND → ErrNotFound, ALREADY_EXISTS → ErrAlreadyExists, ...
import { ClipError } from '@clip/shared';

/** gRPC status codes (grpc/status codes.proto) used here. */
export const GrpcCode = {
  INVALID_ARGUMENT: 3,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  FAILED_PRECONDITION: 9,
  UNAVAILABLE: 14,
  INTERNAL: 13,
} as const;
export type GrpcCodeValue = (typeof GrpcCode)[keyof typeof GrpcCode];

export class SnapshotError extends ClipError {
  readonly grpcCode: GrpcCodeValue;
  constructor(code: string, grpcCode: GrpcCodeValue, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.grpcCode = grpcCode;
  }
}

/** The snapshotter cannot start: its root or socket address is unusable (`where` says which). */
export class SnapshotterSetupError extends ClipError {
  constructor(where: 'root' | 'address', message: string, options?: { cause?: unknown }) {
    super(where === 'root' ? 'CLIP_E_SNAPSHOTTER_ROOT' : 'CLIP_E_SNAPSHOTTER_ADDRESS', message, options);
  }
}

export class SnapshotNotFoundError extends SnapshotError {
  constructor(message: string) {
    super('CLIP_E_SNAPSHOT_NOT_FOUND', GrpcCode.NOT_FOUND, message);
  }
}

export class SnapshotExistsError extends SnapshotError {
  constructor(message: string) {
    super('CLIP_E_SNAPSHOT_EXISTS', GrpcCode.ALREADY_EXISTS, message);
  }
}

export class SnapshotPreconditionError extends SnapshotError {
  constructor(message: string) {
    super('CLIP_E_SNAPSHOT_PRECONDITION', GrpcCode.FAILED_PRECONDITION, message);
  }
}

export class SnapshotArgumentError extends SnapshotError {
  constructor(message: string) {
    super('CLIP_E_SNAPSHOT_ARGUMENT', GrpcCode.INVALID_ARGUMENT, message);
  }
}

/** A lazy image mount could not be started (the caller falls back or fails the request). */
export class ImageMountError extends SnapshotError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('CLIP_E_IMAGE_MOUNT', GrpcCode.UNAVAILABLE, message, options);
  }
}
