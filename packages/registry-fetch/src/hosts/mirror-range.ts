// One byte-range read from a mirror, never held by the mirror: a 206 is used; a 200 (a cold
// pull-through cache streaming the whole blob from upstream, as distribution's proxy mode and
// Harbor do) is handed to the filler and the read moves on to the next host; no response
// headers, or a body pause, within `stallMs` moves on too. No retries here: the next host is
// the retry.
import { type Digest, RegistryError, TimeoutError, type Logger } from '@clip/shared';
import type { RegistryResponse } from '../registry-client.js';
import { repositoryScope } from '../auth.js';
import type { RegistryHost } from './host-set.js';

const CONTENT_RANGE_RE = /^bytes (\d+)-(\d+)\/(\d+|\*)$/;
/** undici's own timers (the mirror's agent has the stall bound as its timeouts) count as stalls too. */
const TIMEOUT_CODES = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'UND_ERR_CONNECT_TIMEOUT']);

/** A stall (undici's timers or our TimeoutError), as opposed to an error answer or a reset. */
export function isStall(error: unknown): boolean {
  if (error instanceof TimeoutError) return true;
  const code = (error as { code?: unknown } | undefined)?.code;
  return typeof code === 'string' && TIMEOUT_CODES.has(code);
}

/** Why a mirror did not serve a read; the caller passes the read to the next host. */
export class MirrorPassError extends RegistryError {
  constructor(
    message: string,
    readonly reason: 'cold' | 'not-found' | 'status' | 'stall' | 'error' | 'bad-answer',
    options?: { status?: number; cause?: unknown },
  ) {
    super(message, options);
  }
}

export interface ColdFillOptions {
  /** `drop`: close a cold 200 at once. `drain`: read it to the end in the background (read-through caches fill only then). */
  mode: 'drop' | 'drain';
  /** Background drains at once; more cold answers are dropped. */
  concurrency: number;
  /** A cold body larger than this is dropped rather than drained. */
  maxBytes: number;
}

/** Drops a response body we will not read (undici emits an abort error on it, which must not go unhandled). */
export function abandon(response: RegistryResponse): void {
  response.body.on('error', () => {});
  response.body.destroy();
}

/** Background reads of cold 200 bodies to their end, bounded in number; never awaited by a read. */
export class ColdFiller {
  private readonly active = new Set<RegistryResponse>();

  constructor(
    private readonly options: ColdFillOptions,
    private readonly logger: Logger,
  ) {}

  take(host: RegistryHost, digest: Digest, response: RegistryResponse): void {
    const length = Number(response.headers['content-length'] ?? Number.NaN);
    const fits = Number.isFinite(length) ? length <= this.options.maxBytes : false;
    if (this.options.mode !== 'drain' || this.active.size >= this.options.concurrency || !fits) {
      abandon(response);
      return;
    }
    this.active.add(response);
    host.stats.fillsStarted++;
    void (async () => {
      try {
        for await (const chunk of response.body) host.stats.fillBytes += (chunk as Buffer).length;
        host.stats.fillsCompleted++;
        // A read-through cache has the blob now: the next read may use it at once.
        host.markWarm(digest);
        this.logger.debug('mirror cache filled', { host: host.stats.host, digest });
      } catch {
        // dropped (close, stall): the mirror fills on a later read or by itself
      } finally {
        this.active.delete(response);
      }
    })();
  }

  close(): void {
    for (const response of this.active) abandon(response);
    this.active.clear();
  }
}

export interface MirrorRangeRequest {
  digest: Digest;
  start: number;
  end: number;
  stallMs: number;
  signal?: AbortSignal;
  /** Called once the mirror's response headers are in (or the attempt ended). */
  onHeaders: () => void;
  filler: ColdFiller;
}

/** Reads [start, end) of a blob from a mirror, or throws MirrorPassError (or the caller's abort). */
export async function mirrorRange(host: RegistryHost, request: MirrorRangeRequest): Promise<Buffer> {
  const { digest, start, end, stallMs, signal } = request;
  const client = host.source.client;
  const what = `GET blob ${digest} bytes ${start}-${end - 1}`;
  const controller = new AbortController();
  let stalled = false;
  let timer: NodeJS.Timeout | undefined;
  const arm = () => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      stalled = true;
      controller.abort(new TimeoutError(`${client.describe()}: ${what}: mirror stalled for ${stallMs} ms`));
    }, stallMs);
  };
  const onAbort = () => controller.abort(signal?.reason);
  signal?.addEventListener('abort', onAbort, { once: true });
  arm();
  host.stats.rangeRequests++;
  let response: RegistryResponse | undefined;
  try {
    response = await client.send({
      method: 'GET',
      path: client.apiPath('blobs', digest),
      headers: { range: `bytes=${start}-${end - 1}` },
      scopes: [repositoryScope(host.source.ref.repository, 'pull')],
      what,
      range: true,
      followRedirects: true,
      noRetry: true,
      signal: controller.signal,
    });
    request.onHeaders();
    if (response.status === 200) {
      host.stats.fullResponses++;
      const length = Number(response.headers['content-length'] ?? Number.NaN);
      host.markCold(digest, Number.isFinite(length) ? length : undefined);
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      request.filler.take(host, digest, response);
      response = undefined;
      throw new MirrorPassError(`${client.describe()}: ${what}: whole blob (HTTP 200) instead of the range: cache is cold`, 'cold');
    }
    if (response.status === 404) {
      host.stats.notFound++;
      host.markCold(digest);
      throw new MirrorPassError(`${client.describe()}: ${what}: not found on the mirror`, 'not-found', { status: 404 });
    }
    if (response.status !== 206) {
      host.stats.errors++;
      throw new MirrorPassError(`${client.describe()}: ${what}: unexpected HTTP ${response.status}`, 'status', { status: response.status });
    }
    const contentRange = response.headers['content-range'];
    const match = typeof contentRange === 'string' ? CONTENT_RANGE_RE.exec(contentRange) : null;
    if (!match || Number(match[1]) !== start || Number(match[2]) !== end - 1) {
      host.stats.errors++;
      throw new MirrorPassError(
        `${client.describe()}: ${what}: 206 with Content-Range ${JSON.stringify(contentRange ?? null)}`,
        'bad-answer',
      );
    }
    const out = Buffer.alloc(end - start);
    let filled = 0;
    for await (const chunk of response.body) {
      arm();
      const buffer = chunk as Buffer;
      if (filled + buffer.length > out.length) {
        host.stats.errors++;
        throw new MirrorPassError(`${client.describe()}: ${what}: body longer than the range`, 'bad-answer');
      }
      buffer.copy(out, filled);
      filled += buffer.length;
    }
    response = undefined;
    if (filled !== out.length) {
      host.stats.errors++;
      throw new MirrorPassError(`${client.describe()}: ${what}: got ${filled} bytes, expected ${out.length}`, 'bad-answer');
    }
    host.stats.rangesHonoured++;
    host.stats.bytes += filled;
    host.markUp();
    host.markWarm(digest);
    return out;
  } catch (error) {
    if (response) abandon(response);
    if (signal?.aborted) throw signal.reason ?? error;
    if (error instanceof MirrorPassError) {
      if (error.reason === 'status' && (error.status ?? 0) >= 500) host.markDown();
      throw error;
    }
    const code = (error as { code?: unknown } | undefined)?.code;
    if (stalled || error instanceof TimeoutError || (typeof code === 'string' && TIMEOUT_CODES.has(code))) {
      host.stats.stalls++;
      host.markDown();
      // No answer to a blob it has not served yet: a pull-through cache is most likely fetching
      // it from upstream before its first byte; asking again soon would open another stream.
      if (!host.digest(digest).warm) host.markCold(digest);
      throw new MirrorPassError(`${client.describe()}: ${what}: mirror stalled for ${stallMs} ms`, 'stall', { cause: error });
    }
    // Connection refused/reset, 5xx after no retries, auth failures: the mirror is not usable now.
    host.stats.errors++;
    host.markDown();
    const message = error instanceof Error ? error.message : String(error);
    throw new MirrorPassError(message, 'error', { cause: error });
  } finally {
    clearTimeout(timer);
    signal?.removeEventListener('abort', onAbort);
    request.onHeaders();
  }
}
