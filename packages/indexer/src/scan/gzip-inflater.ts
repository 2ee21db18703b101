// Picks the gzip block inflater: the native addon (@clip/native-zran) when it loads, else the
// portable pako one, with one warning per process. CLIP_GZIP_SCANNER=portable forces pako.
// pako is loaded only when it is used (it is not needed to start a scan worker).
import { isMainThread } from 'node:worker_threads';
import { ERROR_STALL, loadNativeZran, type GzipBlockInflater } from '@clip/native-zran';
import { createLogger, LayerFormatError } from '@clip/shared';

export type GzipInflaterKind = 'native' | 'portable';

/** Why the native inflater cannot be used, or undefined when it can. */
export function nativeGzipUnavailable(): string | undefined {
  const load = loadNativeZran();
  return load.ok ? undefined : load.reason;
}

function defaultKind(): GzipInflaterKind {
  if (process.env['CLIP_GZIP_SCANNER'] === 'portable') return 'portable';
  return nativeGzipUnavailable() === undefined ? 'native' : 'portable';
}

let warned = false;

function warnOnce(): void {
  const reason = nativeGzipUnavailable();
  if (warned || reason === undefined || process.env['CLIP_GZIP_SCANNER'] === 'portable') return;
  warned = true;
  createLogger().warn('native gzip scanner unavailable, using the portable scanner (slower)', { reason });
}

// Checked when the module loads on the main thread: it is imported there even when worker
// threads do the scanning, so the warning is printed once, not once per worker.
if (isMainThread) warnOnce();

/**
 * A new inflater of the given kind (default: native when available). Throws if `native` is
 * requested but unavailable. `validate: false` skips the gzip CRC-32 and length checks where
 * the inflater can (native only; the portable one always checks): for blobs whose digest is
 * verified anyway.
 */
export async function createGzipInflater(
  kind: GzipInflaterKind = defaultKind(),
  options: { validate?: boolean } = {},
): Promise<GzipBlockInflater> {
  if (kind === 'portable') {
    const { PakoBlockInflater } = await import('./pako-inflater.js');
    return new PakoBlockInflater();
  }
  const load = loadNativeZran();
  if (!load.ok) throw new Error(`native gzip scanner unavailable: ${load.reason}`);
  return new load.binding.GzipBlockInflater(options.validate === false ? { validate: false } : undefined);
}

/** The error for a negative GzipBlockInflater.run() result, at compressed byte `at`. */
export function inflateError(count: number, at: number, inflater: GzipBlockInflater): LayerFormatError {
  if (count === ERROR_STALL) return new LayerFormatError(`gzip stream stalls at byte ${at}`);
  return new LayerFormatError(`gzip stream is corrupt at byte ${at}: ${inflater.message() ?? `inflate error ${count}`}`);
}
