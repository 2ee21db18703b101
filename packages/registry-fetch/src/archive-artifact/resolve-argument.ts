// `clip mount` takes either a .clip file or a registry reference; a reference is turned into
// the path of its published archive (downloaded once, then served from the cache).
import { stat } from 'node:fs/promises';
import { type Logger, parseImageReference } from '@clip/shared';
import type { TrustOptions } from '../archive-trust/load.js';
import { pullArchive } from './pull.js';

export interface ResolveArchiveOptions extends TrustOptions {
  logger?: Logger;
  insecure?: boolean;
  cacheDir?: string;
  /** containerd hosts directory (mirrors) for the archive download. */
  hostsDir?: string;
}

/**
 * Whether `text` names a registry image rather than a file: it does not exist as a file,
 * does not end in `.clip`, and names its registry host explicitly (`host[:port]/repo…` or
 * `docker://…`), so a mistyped file name is never sent to Docker Hub.
 */
export async function isRegistryArgument(text: string): Promise<boolean> {
  // http(s) URLs are archives read by range (mounter), never registry references.
  if (text.endsWith('.clip') || text.startsWith('.') || text.startsWith('/') || /^https?:\/\//i.test(text)) return false;
  if (
    await stat(text).then(
      () => true,
      () => false,
    )
  )
    return false;
  if (text.startsWith('docker://')) return true;
  const first = text.split('/')[0] ?? '';
  if (!text.includes('/') || !(first.includes('.') || first.includes(':') || first === 'localhost')) return false;
  try {
    return parseImageReference(text).kind === 'registry';
  } catch {
    return false;
  }
}

/**
 * The archive file to use for `argument`: itself, or the (cached) archive of a reference that
 * passed every trust check (archive-trust/load.ts).
 */
export async function resolveArchiveArgument(argument: string, options: ResolveArchiveOptions = {}): Promise<string> {
  if (!(await isRegistryArgument(argument))) return argument;
  const pulled = await pullArchive(argument, options);
  return pulled.path;
}
