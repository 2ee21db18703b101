// A FUSE connection held apart from the process that serves it (native/connection.c): the
// holder mounts, keeps the /dev/fuse descriptor and the kernel's FUSE_INIT request, and never
// serves. Servers inherit the descriptor and attach (FuseSessionOptions.attach); when one dies
// the kernel keeps the connection and its requests until the next one attaches.
import { loadNativeFuse, NativeFuseError } from './index.js';

/** What a serving process needs to attach: the inherited descriptor and the INIT bytes. */
export interface HeldConnection {
  fd: number;
  init: Uint8Array;
}

type HolderHandle = { readonly __brand: 'clip-fuse-holder' };

export interface NativeHolder {
  holdMount(mountpoint: string, options: string): { holder: HolderHandle; fd: number; init: Buffer };
  connectionAlive(holder: HolderHandle): boolean;
  releaseMount(holder: HolderHandle): void;
}

export class MountHolder implements HeldConnection {
  readonly mountpoint: string;
  readonly fd: number;
  readonly init: Uint8Array;
  readonly #native: NativeHolder;
  readonly #handle: HolderHandle;
  #released = false;

  private constructor(native: NativeHolder, mountpoint: string, held: { holder: HolderHandle; fd: number; init: Buffer }) {
    this.#native = native;
    this.#handle = held.holder;
    this.mountpoint = mountpoint;
    this.fd = held.fd;
    this.init = held.init;
  }

  /** Mounts (mount(2) as root, fusermount3 otherwise) and holds the connection. */
  static hold(mountpoint: string, options: readonly string[]): MountHolder {
    const native = loadNativeFuse() as unknown as NativeHolder;
    try {
      return new MountHolder(native, mountpoint, native.holdMount(mountpoint, options.join(',')));
    } catch (error) {
      const code = (error as { code?: string }).code ?? 'CLIP_FUSE_MOUNT';
      throw new NativeFuseError(`cannot mount ${mountpoint}: ${(error as Error).message}`, code);
    }
  }

  /** False once the kernel ended the connection (unmounted, or aborted through fusectl). */
  alive(): boolean {
    return !this.#released && this.#native.connectionAlive(this.#handle);
  }

  /**
   * Closes the descriptor and detaches the mount if it is still there. With no server holding
   * the descriptor, the connection is aborted: blocked readers get ENOTCONN, nothing hangs.
   */
  release(): void {
    if (this.#released) return;
    this.#released = true;
    this.#native.releaseMount(this.#handle);
  }
}
