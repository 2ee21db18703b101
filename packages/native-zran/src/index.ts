// Loads the optional native gzip block inflater (build/Release/clip_zran.node). Loading can
// fail (not built, no toolchain, ABI mismatch): callers get the reason and fall back.
import { createRequire } from 'node:module';

/** Event kinds written by GzipBlockInflater.run, EVENT_STRIDE int32s each: kind, input index, output index, unused bits. */
export const EVENT_BOUNDARY = 1;
export const EVENT_MEMBER_END = 2;
export const EVENT_MEMBER_START = 3;
export const EVENT_STRIDE = 4;
/** run() result when zlib could make no progress. */
export const ERROR_STALL = -100;

export interface GzipBlockInflater {
  /**
   * Inflates input[inStart..] into output[outStart..] with Z_BLOCK stops until the input is
   * used up, the output is full or `events` has no room for two more; writes the input and
   * output indexes reached into ends[0], ends[1]. Returns the number of events, or a negative
   * zlib error code (ERROR_STALL: no progress possible). A gzip member ending (trailer
   * included) is followed by an automatic reset when more input follows (EVENT_MEMBER_START).
   */
  run(input: Uint8Array, inStart: number, output: Uint8Array, outStart: number, events: Int32Array, ends: Int32Array): number;
  /** zlib's message for the last error, if any. */
  message(): string | null;
  /** True when the input so far ends exactly at the end of a gzip member. */
  memberEnded(): boolean;
  /** Frees zlib's state now (idempotent); the object is unusable afterwards. */
  close(): void;
}

export interface GzipBlockInflaterOptions {
  /**
   * false: skip the gzip trailer's CRC-32 and length checks (zlib's inflateValidate), which
   * cost about a quarter of a second per GB of output. Only for callers that verify the
   * compressed bytes themselves (e.g. the blob's sha256): corrupt deflate data is still
   * refused, a wrong CRC-32 is not. Default true.
   */
  validate?: boolean;
}

export interface NativeZran {
  GzipBlockInflater: new (options?: GzipBlockInflaterOptions) => GzipBlockInflater;
  zlibVersion: string;
}

export type NativeZranLoad = { ok: true; binding: NativeZran } | { ok: false; reason: string };

let cached: NativeZranLoad | undefined;

/** Loads the addon once per thread; never throws. */
export function loadNativeZran(): NativeZranLoad {
  cached ??= tryLoad();
  return cached;
}

function tryLoad(): NativeZranLoad {
  const require = createRequire(import.meta.url);
  try {
    const binding = require('../build/Release/clip_zran.node') as Partial<NativeZran>;
    if (typeof binding.GzipBlockInflater !== 'function') return { ok: false, reason: 'clip_zran.node has no GzipBlockInflater' };
    return { ok: true, binding: binding as NativeZran };
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const message = error instanceof Error ? error.message.split('\n')[0]! : String(error);
    return {
      ok: false,
      reason: code === 'MODULE_NOT_FOUND' ? 'clip_zran.node is not built (npm run build:native -w @clip/native-zran)' : message,
    };
  }
}
