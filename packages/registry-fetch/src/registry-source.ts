// ImageSource over a registry (distribution API v2): manifests by tag or digest (verified),
// blobs streamed (verified, resumed by Range after a dropped connection), byte ranges by
// HTTP Range.
import { Readable } from 'node:stream';
import {
  type Digest,
  formatImageReference,
  LayerNotFoundError,
  ManifestNotFoundError,
  RegistryError,
  type RegistryReference,
  sha256Digest,
  UsageError,
  verifyDigest,
} from '@clip/shared';
import type { Descriptor, ImageSource, RangeOptions, RawManifest, ResolvedImage, ResolveOptions, SourceStats } from './image-source.js';
import { MANIFEST_ACCEPT, detectManifestMediaType } from './media-types.js';
import { checkRange } from './range.js';
import { RegistryClient, type RegistryClientOptions, type RegistryResponse } from './registry-client.js';
import { repositoryScope } from './auth.js';
import { resolveImage } from './resolve.js';
import { backoffDelay, isRetryableError, sleep } from './retry.js';
import { StatsCounter } from './stats.js';
import { verified } from './verify-stream.js';

const CONTENT_RANGE_RE = /^bytes (\d+)-(\d+)\/(\d+|\*)$/;

/** A 206 for another range, or shorter than asked: worth asking again (a torn or confused proxy). */
class RangeAnswerError extends RegistryError {}

/** Drops a response body we will not read; undici emits an abort error on it, which must not go unhandled. */
function abandon(response: RegistryResponse): void {
  response.body.on('error', () => {});
  response.body.destroy();
}

export class RegistrySource implements ImageSource {
  readonly kind = 'registry' as const;
  readonly reference: string;
  readonly client: RegistryClient;
  private readonly counter = new StatsCounter(true);
  private readonly pullScope: string[];

  constructor(
    readonly ref: RegistryReference,
    options: RegistryClientOptions = {},
  ) {
    this.reference = formatImageReference(ref);
    this.client = new RegistryClient(ref.registry, ref.repository, this.counter, options);
    this.pullScope = [repositoryScope(ref.repository, 'pull')];
  }

  private path(kind: 'manifests' | 'blobs', name: string): string {
    return this.client.apiPath(kind, name);
  }

  /** GET a manifest by tag or digest; verifies the digest it is addressed or announced by. */
  private async getManifest(tagOrDigest: string): Promise<RawManifest> {
    const what = `GET manifest ${tagOrDigest}`;
    const response = await this.client.send({
      method: 'GET',
      path: this.path('manifests', tagOrDigest),
      headers: { accept: MANIFEST_ACCEPT },
      scopes: this.pullScope,
      what,
    });
    if (response.status === 404) {
      await this.client.discard(response);
      throw new ManifestNotFoundError(`${this.ref.registry}/${this.ref.repository}:${tagOrDigest}`.replace(':sha256:', '@sha256:'));
    }
    if (response.status !== 200) throw await this.client.unexpected(response, what);
    const bytes = await this.client.readBody(response, what, 16 * 1024 * 1024);
    const actual = sha256Digest(bytes);
    if (tagOrDigest.startsWith('sha256:')) {
      verifyDigest(`manifest of ${this.reference}`, bytes, tagOrDigest as Digest);
    } else {
      const announced = response.headers['docker-content-digest'];
      if (typeof announced === 'string' && announced.startsWith('sha256:'))
        verifyDigest(`manifest of ${this.reference}`, bytes, announced as Digest);
    }
    const contentType = response.headers['content-type'];
    return {
      digest: actual,
      bytes,
      mediaType: detectManifestMediaType(
        bytes,
        typeof contentType === 'string' ? contentType : undefined,
        `manifest ${tagOrDigest} of ${this.reference}`,
      ),
    };
  }

  topManifest(): Promise<RawManifest> {
    return this.getManifest(this.ref.digest ?? this.ref.tag ?? 'latest');
  }

  async resolve(options?: ResolveOptions): Promise<ResolvedImage> {
    const top = await this.topManifest();
    return resolveImage(
      this.reference,
      top,
      {
        fetchManifest: (digest) => this.fetchManifest(digest),
        readSmallBlob: (descriptor: Descriptor) => this.readSmallBlob(descriptor.digest),
      },
      options,
    );
  }

  fetchManifest(digest: Digest): Promise<RawManifest> {
    return this.getManifest(digest);
  }

  /** GET on a blob, following redirects to blob storage; 404 → LayerNotFoundError. */
  private async getBlob(
    digest: Digest,
    headers: Record<string, string>,
    what: string,
    signal?: AbortSignal,
    range = false,
  ): Promise<RegistryResponse> {
    const response = await this.client.send({
      method: 'GET',
      path: this.path('blobs', digest),
      headers,
      scopes: this.pullScope,
      what,
      followRedirects: true,
      range,
      ...(signal ? { signal } : {}),
    });
    if (response.status === 404) {
      await this.client.discard(response);
      throw new LayerNotFoundError(digest, this.reference);
    }
    return response;
  }

  private async readSmallBlob(digest: Digest): Promise<Buffer> {
    const what = `GET blob ${digest}`;
    const response = await this.getBlob(digest, {}, what);
    if (response.status !== 200) throw await this.client.unexpected(response, what);
    return this.client.readBody(response, what);
  }

  /**
   * Streams a whole blob. If the connection drops mid-body, the rest is requested with a
   * Range from the first missing byte (bounded by the retry policy); the digest is checked
   * over everything at the end.
   */
  async openBlob(digest: Digest, options?: RangeOptions): Promise<Readable> {
    const what = `GET blob ${digest}`;
    const signal = options?.signal;
    const first = await this.getBlob(digest, {}, what, signal);
    if (first.status !== 200) throw await this.client.unexpected(first, what);
    const client = this.client;
    const counter = this.counter;
    const self = this;
    async function* chunks(): AsyncGenerator<Buffer> {
      let response: RegistryResponse | undefined = first;
      let received = 0;
      for (let attempt = 0; ; ) {
        try {
          if (!response) {
            response = await self.getBlob(digest, { range: `bytes=${received}-` }, `${what} (resume at byte ${received})`, signal, true);
            if (response.status === 200) {
              // The server ignored the Range: skip what we already have.
              let skip = received;
              for await (const chunk of response.body) {
                const buffer = chunk as Buffer;
                counter.received(buffer.length);
                if (skip >= buffer.length) {
                  skip -= buffer.length;
                  continue;
                }
                const rest = buffer.subarray(skip);
                skip = 0;
                received += rest.length;
                yield rest;
              }
              return;
            }
            if (response.status !== 206) throw await client.unexpected(response, what);
          }
          for await (const chunk of response.body) {
            const buffer = chunk as Buffer;
            counter.received(buffer.length);
            received += buffer.length;
            yield buffer;
          }
          return;
        } catch (error) {
          if (response) abandon(response);
          response = undefined;
          if (signal?.aborted || !isRetryableError(error) || attempt >= client.retryPolicy.retries) throw client.mapError(error, what);
          await sleep(backoffDelay(client.retryPolicy, attempt++), signal);
        }
      }
    }
    const length = first.headers['content-length'];
    const size = typeof length === 'string' ? Number(length) : undefined;
    return verified(Readable.from(chunks(), { objectMode: false }), `blob ${digest} of ${this.reference}`, digest, size);
  }

  /**
   * Bytes [start, end) of a blob with `Range: bytes=start-(end-1)`. A 206 must carry the
   * matching Content-Range. A 200 (server or proxy ignoring Range) is accepted: the body is
   * read and discarded up to `start`, the range taken, and the connection dropped — slower,
   * but correct, and registries behind simple static file servers do this.
   */
  async readBlobRange(digest: Digest, start: number, end: number, options?: RangeOptions): Promise<Buffer> {
    checkRange(`blob ${digest} of ${this.reference}`, start, end);
    if (start === end) return Buffer.alloc(0);
    const what = `GET blob ${digest} bytes ${start}-${end - 1}`;
    const signal = options?.signal;
    for (let attempt = 0; ; ) {
      try {
        return await this.rangeOnce(digest, start, end, what, signal);
      } catch (error) {
        // Connection dropped mid-body: the whole range is asked for again.
        const retryable = isRetryableError(error) || error instanceof RangeAnswerError;
        if (signal?.aborted || !retryable || attempt >= this.client.retryPolicy.retries) throw this.client.mapError(error, what);
        await sleep(backoffDelay(this.client.retryPolicy, attempt++), signal);
      }
    }
  }

  private async rangeOnce(digest: Digest, start: number, end: number, what: string, signal?: AbortSignal): Promise<Buffer> {
    const response = await this.getBlob(digest, { range: `bytes=${start}-${end - 1}` }, what, signal, true);
    const length = end - start;
    if (response.status === 206) {
      const contentRange = response.headers['content-range'];
      const match = typeof contentRange === 'string' ? CONTENT_RANGE_RE.exec(contentRange) : null;
      if (!match || Number(match[1]) !== start || Number(match[2]) !== end - 1) {
        abandon(response);
        throw new RangeAnswerError(
          `${this.client.describe()}: ${what}: 206 with Content-Range ${JSON.stringify(contentRange ?? null)}, expected bytes ${start}-${end - 1}/…`,
        );
      }
      const body = await this.readRangeBody(response, what, length);
      if (body.length !== length)
        throw new RangeAnswerError(`${this.client.describe()}: ${what}: got ${body.length} bytes, expected ${length}`);
      return body;
    }
    if (response.status === 416) {
      await this.client.discard(response);
      throw new UsageError(`byte range [${start}, ${end}) is outside blob ${digest} of ${this.reference} (HTTP 416)`);
    }
    if (response.status !== 200) throw await this.client.unexpected(response, what);
    this.client.logger.debug('registry ignored Range; skipping to the range in a full response', { digest, start, end });
    const out = Buffer.alloc(length);
    let position = 0;
    let filled = 0;
    for await (const chunk of response.body) {
      const buffer = chunk as Buffer;
      this.counter.received(buffer.length);
      const from = Math.max(start - position, 0);
      const to = Math.min(end - position, buffer.length);
      if (to > from) {
        buffer.copy(out, filled, from, to);
        filled += to - from;
      }
      position += buffer.length;
      if (filled === length) break;
    }
    // Stop the download of the rest of the blob (closes that connection).
    abandon(response);
    if (filled !== length)
      throw new UsageError(`byte range [${start}, ${end}) is outside blob ${digest} of ${this.reference} (size ${position})`);
    return out;
  }

  private async readRangeBody(response: RegistryResponse, what: string, length: number): Promise<Buffer> {
    return this.client.readBody(response, what, length);
  }

  async hasBlob(digest: Digest): Promise<boolean> {
    const what = `HEAD blob ${digest}`;
    const response = await this.client.send({
      method: 'HEAD',
      path: this.path('blobs', digest),
      scopes: this.pullScope,
      what,
      followRedirects: true,
    });
    await this.client.discard(response);
    if (response.status === 200) return true;
    if (response.status === 404) return false;
    throw new RegistryError(`${this.client.describe()}: ${what}: unexpected HTTP ${response.status}`, { status: response.status });
  }

  stats(): SourceStats {
    return this.counter.snapshot();
  }

  async close(): Promise<void> {
    await this.client.close();
  }
}
