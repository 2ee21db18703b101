// Opens the archive a command names: a local .clip file or an http(s) URL, read by range
// (only the head up front). Data-carrying archives then serve file contents from the same
// source; OCI-mode archives from their registry (storage reference).
import {
  type ArchiveByteSource,
  type ClipArchive,
  dataSectionFetchRange,
  openArchiveFromSource,
  openFileByteSource,
} from '@clip/archive-format';
import { isArchiveUrl } from './archive-url.js';
// The HTTP and registry clients (undici) are loaded only when a URL or a registry is read.
import type { HttpSourceOptions } from './http-archive-source.js';
import type { StorageOptions } from './storage-source.js';
import type { LayerFetcher } from './layer-fetcher.js';

export interface OpenedArchive {
  archive: ClipArchive;
  /** 'data' = file contents inside the archive (v2.1); 'oci' = layers in a registry. */
  mode: 'data' | 'oci';
  source: ArchiveByteSource;
  close(): Promise<void>;
}

function once(fn: () => Promise<void>): () => Promise<void> {
  let done: Promise<void> | undefined;
  return () => (done ??= fn());
}

export async function openArchiveLocation(location: string, options: HttpSourceOptions = {}): Promise<OpenedArchive> {
  const source = isArchiveUrl(location)
    ? await (await import('./http-archive-source.js')).openHttpByteSource(location, options)
    : await openFileByteSource(location);
  try {
    const archive = await openArchiveFromSource(source);
    return { archive, mode: archive.dataSection ? 'data' : 'oci', source, close: once(() => source.close()) };
  } catch (error) {
    await source.close();
    throw error;
  }
}

/** Where the opened archive's layer bytes come from; closing it closes the archive source too. */
export async function openArchiveFetcher(opened: OpenedArchive, options: StorageOptions = {}): Promise<LayerFetcher> {
  if (opened.mode === 'data') {
    options.logger?.info('serving file contents from the archive', { archive: opened.source.description });
    return { reference: opened.source.description, fetchRange: dataSectionFetchRange(opened.archive, opened.source), close: opened.close };
  }
  // The whole OCI-mode archive is already in memory.
  await opened.close();
  const { openStorageFetcher } = await import('./storage-source.js');
  return openStorageFetcher(opened.archive, options);
}
