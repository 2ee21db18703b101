// Opens the registry an archive's layers live in (its embedded storage reference) as a
// LayerFetcher: what `clip mount` and `clip cat` read layer byte ranges through.
import type { StorageReference } from '@clip/archive-format';
import { ArchiveFormatError, type Logger, silentLogger } from '@clip/shared';
import { hostStatsPrometheus, MirroredSource, openImageSource } from '@clip/registry-fetch';
import type { MountableArchive } from './archive-view.js';
import type { LayerFetcher } from './layer-fetcher.js';

/** `registry/repository@digest` (pinned to the manifest the archive was built from). */
export function storageReference(storage: StorageReference): string {
  return `${storage.registry}/${storage.repository}@${storage.manifestDigest}`;
}

export interface StorageOptions {
  insecure?: boolean;
  logger?: Logger;
  /** Bound on each registry request phase (connect, headers, body pauses), ms. */
  requestTimeoutMs?: number;
  retries?: number;
  /** containerd hosts directory: read layers through the mirrors its hosts.toml lists. */
  hostsDir?: string;
}

export async function openStorageFetcher(archive: Pick<MountableArchive, 'metadata'>, options: StorageOptions = {}): Promise<LayerFetcher> {
  const logger = options.logger ?? silentLogger;
  const storage = archive.metadata.storage;
  if (!storage)
    throw new ArchiveFormatError('archive has no storage reference (it was not indexed in OCI mode), so its layers cannot be fetched');
  const reference = storageReference(storage);
  logger.info('cached source image reference from metadata', { reference, source: archive.metadata.sourceRef });
  const timeout = options.requestTimeoutMs;
  const source = await openImageSource(reference, {
    logger,
    ...(options.insecure ? { insecure: true } : {}),
    ...(timeout ? { timeouts: { connectMs: timeout, headersMs: timeout, bodyMs: timeout } } : {}),
    ...(options.retries !== undefined ? { retries: options.retries } : {}),
    ...(options.hostsDir ? { hostsDir: options.hostsDir } : {}),
    // A mirror gets a third of the read budget before the read goes to the next host.
    ...(options.hostsDir && timeout ? { mirror: { stallMs: Math.max(200, Math.min(2000, Math.round(timeout / 3))) } } : {}),
  });
  return {
    reference,
    fetchRange: (digest, start, end, signal) => source.readBlobRange(digest, start, end, signal ? { signal } : {}),
    ...(source instanceof MirroredSource
      ? { hostStats: () => source.hostStats(), prometheus: () => hostStatsPrometheus(source.hostStats()) }
      : {}),
    close: () => source.close(),
  };
}
