// Typed errors of the container runtime; the CLI turns them into exit code 1 with the message.
import { ClipError } from '@clip/shared';

/** The image config or the run options cannot be turned into a container (unknown user, bad -v, ...). */
export class ContainerConfigError extends ClipError {
  constructor(message: string) {
    super('CLIP_E_CONTAINER_CONFIG', message);
  }
}

/** The state directory (default /run/clip) is unusable, or a name in it is taken. */
export class StateDirError extends ClipError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('CLIP_E_STATE_DIR', message, options);
  }
}

/** The OCI runtime (runc, crun) is missing or failed to create/start/delete a container. */
export class OciRuntimeError extends ClipError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('CLIP_E_OCI_RUNTIME', message, options);
  }
}

/** The detached process serving an image's lazy mount did not come up. */
export class MountServerError extends ClipError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('CLIP_E_MOUNT_SERVER', message, options);
  }
}

/** mount(8)/umount(8) of an overlay failed. */
export class OverlayError extends ClipError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('CLIP_E_OVERLAY', message, options);
  }
}
