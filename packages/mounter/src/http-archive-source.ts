// An archive served over HTTP(S) as an ArchiveByteSource: every read is one Range request
// (retried with backoff on connection failures and 5xx), so a data-carrying archive is opened
// from its head and file contents are fetched block by block. The first request learns the
// file length from Content-Range and its bytes are kept (they hold the header and tables).
import { Agent, type Dispatcher } from 'undici';
import { type ArchiveByteSource, FIRST_READ_BYTES } from '@clip/archive-format';
import { ArchiveFormatError, IoError, type Logger, silentLogger, UsageError } from '@clip/shared';
import { backoffDelay, isRetryableError, isRetryableStatus, retryPolicy, sleep, type RetryPolicy } from '@clip/registry-fetch';

export interface HttpSourceOptions {
  /** Connect, headers and body-pause bound per request, ms (default 30000). */
  timeoutMs?: number;
  /** Retries of a failed request (default 2). */
  retries?: number;
  /** HTTPS without certificate checks. */
  insecure?: boolean;
  logger?: Logger;
}

export interface HttpSourceStats {
  requests: number;
  bytes: number;
}

const CONTENT_RANGE_RE = /^bytes (\d+)-(\d+)\/(\d+|\*)$/;

/** The URL without user info, for logs and errors. */
function describeUrl(url: URL): string {
  const shown = new URL(url.href);
  shown.username = '';
  shown.password = '';
  return shown.href;
}

class HttpArchiveSource implements ArchiveByteSource {
  readonly stats: HttpSourceStats = { requests: 0, bytes: 0 };
  size = 0;
  private first: Uint8Array = new Uint8Array(0);
  private readonly headers: Record<string, string> = {};

  constructor(
    private readonly url: URL,
    readonly description: string,
    private readonly agent: Agent,
    private readonly policy: RetryPolicy,
    private readonly logger: Logger,
  ) {
    if (url.username || url.password) {
      const user = decodeURIComponent(url.username);
      const pass = decodeURIComponent(url.password);
      this.headers.authorization = `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}`;
    }
  }

  /** First request: learns the size, keeps the bytes. */
  async start(): Promise<void> {
    const { body, total } = await this.request(0, FIRST_READ_BYTES);
    this.size = total;
    this.first = body;
  }

  async read(start: number, end: number, signal?: AbortSignal): Promise<Uint8Array> {
    if (!(Number.isSafeInteger(start) && Number.isSafeInteger(end) && start >= 0 && start <= end && end <= this.size)) {
      throw new UsageError(`bad byte range [${start}, ${end}) of ${this.description} (${this.size} bytes)`);
    }
    if (start === end) return new Uint8Array(0);
    if (end <= this.first.length) return this.first.subarray(start, end);
    const { body } = await this.request(start, end, signal);
    if (body.length !== end - start)
      throw new ArchiveFormatError(`corrupt archive: ${this.description}: got ${body.length} bytes of [${start}, ${end})`);
    return body;
  }

  private async request(start: number, end: number, signal?: AbortSignal): Promise<{ body: Uint8Array; total: number }> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.once(start, end, signal);
      } catch (error) {
        const status = (error as { status?: number }).status;
        const retryable = status !== undefined ? isRetryableStatus(status) : isRetryableError(error);
        if (signal?.aborted || !retryable || attempt >= this.policy.retries) throw error;
        this.logger.debug('retrying archive range request', { url: this.description, start, end, attempt });
        await sleep(backoffDelay(this.policy, attempt), signal);
      }
    }
  }

  private async once(start: number, end: number, signal?: AbortSignal): Promise<{ body: Uint8Array; total: number }> {
    this.stats.requests++;
    const options: Dispatcher.RequestOptions = {
      origin: this.url.origin,
      path: `${this.url.pathname}${this.url.search}`,
      method: 'GET',
      headers: { ...this.headers, range: `bytes=${start}-${end - 1}` },
      ...(signal ? { signal } : {}),
    };
    let response: Dispatcher.ResponseData;
    try {
      response = await this.agent.request(options);
    } catch (error) {
      if (signal?.aborted) throw error;
      // The cause keeps undici's code, so isRetryableError still sees it.
      throw new IoError(`cannot read archive ${this.description}: ${(error as Error).message}`, { cause: error });
    }
    const { statusCode, headers } = response;
    if (statusCode === 416) {
      await response.body.dump();
      throw new ArchiveFormatError(`corrupt archive: ${this.description} has no bytes at ${start} (HTTP 416: truncated?)`);
    }
    if (statusCode !== 206 && statusCode !== 200) {
      await response.body.dump();
      throw Object.assign(new ArchiveFormatError(`cannot read archive ${this.description}: HTTP ${statusCode}`), { status: statusCode });
    }
    const body = new Uint8Array(await response.body.arrayBuffer());
    this.stats.bytes += body.length;
    if (statusCode === 200) {
      // No Range support: usable only when we asked from 0 and got the whole (small) file.
      if (start !== 0) throw new ArchiveFormatError(`cannot read archive ${this.description}: the server ignores Range requests`);
      // The whole file is kept as the "first bytes", so every later read is served from memory.
      this.logger.warn('archive server ignores Range requests; read the whole file', { url: this.description, bytes: body.length });
      return { body, total: body.length };
    }
    const contentRange = headers['content-range'];
    const match = typeof contentRange === 'string' ? CONTENT_RANGE_RE.exec(contentRange) : null;
    if (!match || Number(match[1]) !== start || match[3] === '*') {
      throw new ArchiveFormatError(
        `cannot read archive ${this.description}: 206 with Content-Range ${JSON.stringify(contentRange ?? null)} for bytes ${start}-${end - 1}`,
      );
    }
    const total = Number(match[3]);
    const expected = Math.min(end, total) - start;
    if (Number(match[2]) !== start + expected - 1 || body.length !== expected) {
      throw new ArchiveFormatError(
        `cannot read archive ${this.description}: got ${body.length} bytes for bytes ${start}-${end - 1} of ${total}`,
      );
    }
    return { body, total };
  }

  async close(): Promise<void> {
    await this.agent.close();
  }
}

export { isArchiveUrl } from './archive-url.js';

export async function openHttpByteSource(
  url: string,
  options: HttpSourceOptions = {},
): Promise<ArchiveByteSource & { readonly stats: HttpSourceStats }> {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new UsageError(`not a URL: ${JSON.stringify(url)}`);
  }
  const timeout = options.timeoutMs ?? 30_000;
  const agent = new Agent({
    connectTimeout: timeout,
    headersTimeout: timeout,
    bodyTimeout: timeout,
    connections: 8,
    ...(options.insecure ? { connect: { rejectUnauthorized: false } } : {}),
  });
  const source = new HttpArchiveSource(
    parsed,
    describeUrl(parsed),
    agent,
    retryPolicy({ retries: options.retries ?? 2 }),
    options.logger ?? silentLogger,
  );
  try {
    await source.start();
  } catch (error) {
    await agent.close();
    throw error;
  }
  return source;
}
