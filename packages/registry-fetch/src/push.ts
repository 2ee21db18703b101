// Copying an image into a registry (distribution API v2 push):
//   every blob: HEAD (already there → skip); same registry → try a cross-repository mount;
//   else POST an upload session, then one PUT (small blobs) or PATCH chunks + PUT (large);
//   then every manifest by digest (children before their index), then the tag.
// Upload steps are not retried one by one (an upload session has state); a failed blob
// upload is restarted from the HEAD, within the retry policy.
// Over 400 lines on purpose: the distribution push protocol (blob upload states, then the image plan) in one place.
import type { Readable } from 'node:stream';
import {
  type Digest,
  DigestMismatchError,
  forEachConcurrent,
  formatImageReference,
  parseRegistryReference,
  RegistryError,
  type RegistryReference,
  sha256Digest,
} from '@clip/shared';
import { repositoryScope } from './auth.js';
import type { ImageSource, RawManifest } from './image-source.js';
import { isIndexMediaType } from './media-types.js';
import { RegistryClient, type RegistryClientOptions, type RegistryResponse } from './registry-client.js';
import { RegistrySource } from './registry-source.js';
import { parseImageManifest, parseIndexEntries } from './resolve.js';
import { backoffDelay, isRetryableError, sleep } from './retry.js';
import { StatsCounter } from './stats.js';

/** Blobs up to this size go up in one PUT; larger ones in PATCH chunks. */
const DEFAULT_MONOLITHIC_LIMIT = 8 * 1024 * 1024;
const DEFAULT_CHUNK_SIZE = 8 * 1024 * 1024;

/** A registry repository to push into. */
export class RegistryTarget {
  readonly ref: RegistryReference;
  readonly reference: string;
  readonly client: RegistryClient;
  private readonly counter = new StatsCounter(true);

  constructor(ref: RegistryReference, options: RegistryClientOptions = {}) {
    this.ref = ref;
    this.reference = formatImageReference(ref);
    this.client = new RegistryClient(ref.registry, ref.repository, this.counter, options);
  }

  get pushScopes(): string[] {
    return [repositoryScope(this.ref.repository, 'push')];
  }

  blobPath(digest: Digest): string {
    return `/v2/${this.ref.repository}/blobs/${digest}`;
  }

  stats() {
    return this.counter.snapshot();
  }

  close(): Promise<void> {
    return this.client.close();
  }
}

export function openRegistryTarget(reference: string | RegistryReference, options: RegistryClientOptions = {}): RegistryTarget {
  return new RegistryTarget(typeof reference === 'string' ? parseRegistryReference(reference) : reference, options);
}

export interface BlobToPush {
  digest: Digest;
  size: number;
  /** The bytes, or a way to stream them (called again if an upload is restarted). */
  content: Uint8Array | (() => Promise<Readable>);
}

export interface PushBlobOptions {
  /** Repository on the same registry to mount the blob from instead of uploading. */
  mountFrom?: string;
  /** Called with each number of bytes sent. */
  onBytes?: (bytes: number) => void;
  monolithicLimit?: number;
  chunkSize?: number;
}

export type PushBlobResult = 'exists' | 'mounted' | 'uploaded';

function location(response: RegistryResponse, what: string, describe: string): string {
  const value = response.headers['location'];
  const text = Array.isArray(value) ? value[0] : value;
  if (!text) throw new RegistryError(`${describe}: ${what}: HTTP ${response.status} without a Location header`);
  return new URL(text, response.url).toString();
}

function withDigest(url: string, digest: Digest): string {
  const parsed = new URL(url);
  parsed.searchParams.set('digest', digest);
  return parsed.toString();
}

async function blobExists(target: RegistryTarget, digest: Digest): Promise<boolean> {
  const what = `HEAD blob ${digest}`;
  const response = await target.client.send({
    method: 'HEAD',
    path: target.blobPath(digest),
    scopes: target.pushScopes,
    what,
    followRedirects: true,
  });
  await target.client.discard(response);
  if (response.status === 200) return true;
  if (response.status === 404) return false;
  throw new RegistryError(`${target.client.describe()}: ${what}: unexpected HTTP ${response.status}`, { status: response.status });
}

/** Chunks of `size` bytes (the last may be shorter) from a stream. */
async function* rechunk(stream: Readable, size: number): AsyncGenerator<Buffer> {
  let parts: Buffer[] = [];
  let held = 0;
  for await (const chunk of stream) {
    let buffer = chunk as Buffer;
    while (held + buffer.length >= size) {
      const take = size - held;
      parts.push(buffer.subarray(0, take));
      yield Buffer.concat(parts);
      parts = [];
      held = 0;
      buffer = buffer.subarray(take);
    }
    if (buffer.length > 0) {
      parts.push(buffer);
      held += buffer.length;
    }
  }
  if (held > 0) yield Buffer.concat(parts);
}

async function contentBytes(blob: BlobToPush): Promise<Buffer> {
  if (typeof blob.content !== 'function') return Buffer.from(blob.content.buffer, blob.content.byteOffset, blob.content.byteLength);
  const chunks: Buffer[] = [];
  for await (const chunk of await blob.content()) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

async function uploadOnce(target: RegistryTarget, blob: BlobToPush, options: PushBlobOptions): Promise<PushBlobResult> {
  const { client } = target;
  const describe = client.describe();
  if (await blobExists(target, blob.digest)) return 'exists';

  const uploads = `/v2/${target.ref.repository}/blobs/uploads/`;
  let start: RegistryResponse;
  if (options.mountFrom && options.mountFrom !== target.ref.repository) {
    const what = `mount blob ${blob.digest} from ${options.mountFrom}`;
    start = await client.send({
      method: 'POST',
      path: `${uploads}?mount=${encodeURIComponent(blob.digest)}&from=${encodeURIComponent(options.mountFrom)}`,
      headers: { 'content-length': '0' },
      scopes: [...target.pushScopes, repositoryScope(options.mountFrom, 'pull')],
      what,
      noRetry: true,
    });
    if (start.status === 201) {
      await client.discard(start);
      return 'mounted';
    }
    // 202: the registry could not mount and opened an ordinary upload session instead.
  } else {
    start = await client.send({
      method: 'POST',
      path: uploads,
      headers: { 'content-length': '0' },
      scopes: target.pushScopes,
      what: `start upload of blob ${blob.digest}`,
      noRetry: true,
    });
  }
  if (start.status !== 202) throw await client.unexpected(start, `start upload of blob ${blob.digest}`);
  await client.discard(start);
  let url = location(start, `start upload of blob ${blob.digest}`, describe);

  const monolithicLimit = options.monolithicLimit ?? DEFAULT_MONOLITHIC_LIMIT;
  let finish: RegistryResponse;
  if (blob.size <= monolithicLimit) {
    const bytes = await contentBytes(blob);
    const what = `upload blob ${blob.digest}`;
    finish = await client.send({
      method: 'PUT',
      path: withDigest(url, blob.digest),
      headers: { 'content-type': 'application/octet-stream', 'content-length': String(bytes.length) },
      body: bytes,
      scopes: target.pushScopes,
      what,
      noRetry: true,
    });
    if (finish.status !== 201) throw await client.unexpected(finish, what);
    options.onBytes?.(bytes.length);
  } else {
    const stream = typeof blob.content === 'function' ? await blob.content() : undefined;
    const chunks = stream ? rechunk(stream, options.chunkSize ?? DEFAULT_CHUNK_SIZE) : undefined;
    let offset = 0;
    const whole = stream ? undefined : await contentBytes(blob);
    const chunkSize = options.chunkSize ?? DEFAULT_CHUNK_SIZE;
    const next = async (): Promise<Buffer | undefined> => {
      if (chunks) {
        const result = await chunks.next();
        return result.done ? undefined : result.value;
      }
      if (!whole || offset >= whole.length) return undefined;
      return whole.subarray(offset, offset + chunkSize);
    };
    for (let chunk = await next(); chunk; chunk = await next()) {
      const what = `upload blob ${blob.digest} bytes ${offset}-${offset + chunk.length - 1}`;
      const response = await client.send({
        method: 'PATCH',
        path: url,
        headers: {
          'content-type': 'application/octet-stream',
          'content-length': String(chunk.length),
          'content-range': `${offset}-${offset + chunk.length - 1}`,
        },
        body: chunk,
        scopes: target.pushScopes,
        what,
        noRetry: true,
      });
      if (response.status !== 202) throw await client.unexpected(response, what);
      await client.discard(response);
      url = location(response, what, describe);
      offset += chunk.length;
      options.onBytes?.(chunk.length);
    }
    stream?.destroy();
    const what = `finish upload of blob ${blob.digest}`;
    finish = await client.send({
      method: 'PUT',
      path: withDigest(url, blob.digest),
      headers: { 'content-length': '0' },
      scopes: target.pushScopes,
      what,
      noRetry: true,
    });
    if (finish.status !== 201) throw await client.unexpected(finish, what);
  }
  await client.discard(finish);
  const stored = finish.headers['docker-content-digest'];
  if (typeof stored === 'string' && stored !== blob.digest)
    throw new DigestMismatchError(`blob pushed to ${target.reference}`, blob.digest, stored);
  return 'uploaded';
}

/** Puts one blob into the target repository unless it is already there. */
export async function pushBlob(target: RegistryTarget, blob: BlobToPush, options: PushBlobOptions = {}): Promise<PushBlobResult> {
  const policy = target.client.retryPolicy;
  for (let attempt = 0; ; attempt++) {
    try {
      return await uploadOnce(target, blob, options);
    } catch (error) {
      const retryable = isRetryableError(error) || (error instanceof RegistryError && error.status !== undefined && error.status >= 500);
      if (!retryable || attempt >= policy.retries) throw error;
      target.client.logger.debug('restarting blob upload', { digest: blob.digest, attempt: attempt + 1 });
      await sleep(backoffDelay(policy, attempt));
    }
  }
}

/** PUTs a manifest or index under a tag or its digest; returns its digest (checked against the registry's). */
export async function pushManifest(
  target: RegistryTarget,
  manifest: { bytes: Uint8Array; mediaType: string },
  tagOrDigest?: string,
): Promise<Digest> {
  const digest = sha256Digest(manifest.bytes);
  const name = tagOrDigest ?? digest;
  const what = `PUT manifest ${name}`;
  const response = await target.client.send({
    method: 'PUT',
    path: `/v2/${target.ref.repository}/manifests/${name}`,
    headers: { 'content-type': manifest.mediaType, 'content-length': String(manifest.bytes.length) },
    body: manifest.bytes,
    scopes: target.pushScopes,
    what,
  });
  if (response.status !== 201) throw await target.client.unexpected(response, what);
  await target.client.discard(response);
  const stored = response.headers['docker-content-digest'];
  if (typeof stored === 'string' && stored !== digest)
    throw new DigestMismatchError(`manifest pushed to ${target.reference}`, digest, stored);
  return digest;
}

export interface PushProgress {
  event: 'start' | 'blob-exists' | 'blob-mounted' | 'blob-uploaded' | 'bytes' | 'manifest' | 'tag' | 'done';
  digest?: Digest;
  blobsDone: number;
  blobsTotal: number;
  /** Bytes of blobs done (uploaded, mounted or found) plus bytes sent of blobs in flight. */
  bytesDone: number;
  bytesTotal: number;
  bytesUploaded: number;
}

export interface PushOptions extends RegistryClientOptions {
  onProgress?: (progress: PushProgress) => void;
  /** Blobs uploaded at once; default 3. */
  concurrency?: number;
  monolithicLimit?: number;
  chunkSize?: number;
}

export interface PushResult {
  /** Where it went, with the tag. */
  reference: string;
  /** Digest of what the tag points at (index or manifest). */
  digest: Digest;
  mediaType: string;
  blobsUploaded: number;
  blobsSkipped: number;
  blobsMounted: number;
  bytesUploaded: number;
  manifestsPushed: number;
}

interface PushPlan {
  blobs: Map<Digest, number>;
  /** Children first, the top last. */
  manifests: RawManifest[];
}

async function plan(source: ImageSource, manifest: RawManifest, into: PushPlan, depth = 0): Promise<void> {
  if (depth > 4) throw new RegistryError(`${source.reference}: image indexes nested too deep to push`);
  if (into.manifests.some((known) => known.digest === manifest.digest)) return;
  if (isIndexMediaType(manifest.mediaType)) {
    for (const entry of parseIndexEntries(manifest.bytes, `index ${manifest.digest}`)) {
      await plan(source, await source.fetchManifest(entry.digest), into, depth + 1);
    }
  } else {
    const parsed = parseImageManifest(manifest.bytes, `manifest ${manifest.digest}`);
    for (const blob of [parsed.config, ...parsed.layers]) into.blobs.set(blob.digest, blob.size);
  }
  into.manifests.push(manifest);
}

/**
 * Copies the image `source` names (all platforms of an index) into `target`
 * (`host/repo:tag`). Blobs already present are not uploaded again.
 */
export async function pushImage(source: ImageSource, target: string | RegistryReference, options: PushOptions = {}): Promise<PushResult> {
  const ref = typeof target === 'string' ? parseRegistryReference(target) : target;
  const { onProgress, concurrency, monolithicLimit, chunkSize, ...clientOptions } = options;
  const destination = new RegistryTarget(ref, clientOptions);
  try {
    const top = await source.topManifest();
    const work: PushPlan = { blobs: new Map(), manifests: [] };
    await plan(source, top, work);

    const progress: PushProgress = {
      event: 'start',
      blobsDone: 0,
      blobsTotal: work.blobs.size,
      bytesDone: 0,
      bytesTotal: [...work.blobs.values()].reduce((sum, size) => sum + size, 0),
      bytesUploaded: 0,
    };
    const report = (event: PushProgress['event'], digest?: Digest) => onProgress?.({ ...progress, event, ...(digest ? { digest } : {}) });
    report('start');

    const mountFrom = source instanceof RegistrySource && source.ref.registry === ref.registry ? source.ref.repository : undefined;
    const counts = { uploaded: 0, skipped: 0, mounted: 0 };
    await forEachConcurrent([...work.blobs.entries()], concurrency ?? 3, async ([digest, size]) => {
      let sent = 0;
      const result = await pushBlob(
        destination,
        { digest, size, content: () => source.openBlob(digest) },
        {
          ...(mountFrom ? { mountFrom } : {}),
          ...(monolithicLimit !== undefined ? { monolithicLimit } : {}),
          ...(chunkSize !== undefined ? { chunkSize } : {}),
          onBytes: (bytes) => {
            sent += bytes;
            progress.bytesUploaded += bytes;
            progress.bytesDone += bytes;
            report('bytes', digest);
          },
        },
      );
      progress.blobsDone++;
      // A restarted upload may have reported some bytes twice; settle on the blob's size.
      progress.bytesDone += size - sent;
      if (result === 'uploaded') counts.uploaded++;
      else if (result === 'mounted') counts.mounted++;
      else counts.skipped++;
      report(result === 'uploaded' ? 'blob-uploaded' : result === 'mounted' ? 'blob-mounted' : 'blob-exists', digest);
    });

    for (const manifest of work.manifests) {
      await pushManifest(destination, manifest);
      report('manifest', manifest.digest);
    }
    const tag = ref.tag ?? (ref.digest ? undefined : 'latest');
    if (ref.digest && ref.digest !== top.digest) {
      throw new DigestMismatchError(`push target ${formatImageReference(ref)}`, ref.digest, top.digest);
    }
    if (tag) {
      await pushManifest(destination, top, tag);
      report('tag', top.digest);
    }
    report('done');
    return {
      reference: formatImageReference(ref),
      digest: top.digest,
      mediaType: top.mediaType,
      blobsUploaded: counts.uploaded,
      blobsSkipped: counts.skipped,
      blobsMounted: counts.mounted,
      bytesUploaded: progress.bytesUploaded,
      manifestsPushed: work.manifests.length,
    };
  } finally {
    await destination.close();
  }
}
