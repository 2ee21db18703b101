// HTTP to one repository of one registry over undici: one Agent (a keep-alive Pool per
// origin, bounded connections, no pipelining) per client; auth challenges answered; bounded
// retries; redirects followed by hand so Authorization never leaves the registry's origin.
// Over 400 lines on purpose: one request loop (auth, retry, redirect, error mapping) that reads best in one place.
import type { IncomingHttpHeaders } from 'node:http';
import { rootCertificates } from 'node:tls';
import { Agent, type Dispatcher } from 'undici';
import {
  AuthError,
  isClipError,
  isLoopbackRegistry,
  type Logger,
  registryEndpointHost,
  RegistryError,
  silentLogger,
  TimeoutError,
} from '@clip/shared';
import { Authenticator } from './auth.js';
import { resolveCredentials, type Credentials, type ResolvedCredentials } from './credentials.js';
import {
  backoffDelay,
  isRetryableError,
  isRetryableStatus,
  parseRetryAfter,
  retryPolicy,
  sleep,
  type RetryOptions,
  type RetryPolicy,
} from './retry.js';
import type { StatsCounter } from './stats.js';

export interface TimeoutOptions {
  /** TCP + TLS connect, ms; default 10000. */
  connectMs?: number;
  /** From request sent to response headers, ms; default 30000. */
  headersMs?: number;
  /** Longest pause between two body chunks, ms; default 30000. */
  bodyMs?: number;
}

export interface RegistryClientOptions {
  credentials?: Credentials;
  /** Non-loopback registries: HTTPS without certificate checks, falling back to plain HTTP. */
  insecure?: boolean;
  logger?: Logger;
  timeouts?: TimeoutOptions;
  /** Retry count, or a full policy. */
  retries?: number | RetryOptions;
  /** Concurrent connections per origin; default 8. */
  connectionsPerHost?: number;
  /** For credential lookup (tests); default process.env. */
  env?: NodeJS.ProcessEnv;
  dockerConfigDir?: string;
  /** Talk to this endpoint instead of the registry's own (a mirror from hosts.toml). */
  endpoint?: RegistryEndpoint;
}

/** A host that serves the registry's API: a mirror, or the registry under another URL. */
export interface RegistryEndpoint {
  /** `scheme://host[:port]`. */
  url: string;
  /** API path prefix; default `/v2`. */
  apiPath?: string;
  /** Sent with every request to this endpoint (hosts.toml `header`). */
  headers?: Record<string, string>;
  /** Query parameters added to API paths (containerd's `ns=<registry>` for mirrors). */
  query?: Record<string, string>;
  /** TLS: extra CA certificates and client certificates (PEM), certificate checks. */
  tls?: { ca?: string[]; cert?: string[]; key?: string[]; rejectUnauthorized?: boolean };
}

export type HttpMethod = 'GET' | 'HEAD' | 'PUT' | 'POST' | 'PATCH' | 'DELETE';

export interface RegistryRequest {
  method: HttpMethod;
  /** `/v2/...` on the registry, or an absolute URL (upload locations, redirects). */
  path: string;
  headers?: Record<string, string>;
  body?: Uint8Array;
  /** Token scopes the request needs. */
  scopes: string[];
  /** What is being done, for errors and logs: `GET blob sha256:…`. */
  what: string;
  /** Count as a range request in stats. */
  range?: boolean;
  followRedirects?: boolean;
  signal?: AbortSignal;
  /** Do not retry (upload steps: the caller restarts the whole upload instead). */
  noRetry?: boolean;
}

export interface RegistryResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: Dispatcher.ResponseData['body'];
  url: URL;
}

const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);
const MAX_REDIRECTS = 5;

function header(headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/** Distribution's error body `{"errors":[{"code","message"}]}` → `CODE: message`, if present. */
function registryErrorDetail(body: Buffer): string {
  try {
    const parsed = JSON.parse(body.toString('utf8')) as { errors?: Array<{ code?: string; message?: string }> };
    const first = parsed.errors?.[0];
    if (first) return `${first.code ?? 'ERROR'}${first.message ? `: ${first.message}` : ''}`;
  } catch {
    // not JSON
  }
  return '';
}

function endpointTls(endpoint: RegistryEndpoint | undefined): {
  ca?: string[];
  cert?: string[];
  key?: string[];
  rejectUnauthorized?: boolean;
} {
  const tls = endpoint?.tls;
  if (!tls) return {};
  return {
    // Extra CAs add to the system's, as containerd does.
    ...(tls.ca && tls.ca.length > 0 ? { ca: [...rootCertificates, ...tls.ca] } : {}),
    ...(tls.cert && tls.cert.length > 0 ? { cert: tls.cert, key: tls.key ?? [] } : {}),
    ...(tls.rejectUnauthorized !== undefined ? { rejectUnauthorized: tls.rejectUnauthorized } : {}),
  };
}

export class RegistryClient {
  readonly registry: string;
  readonly repository: string;
  private base: URL;
  private readonly agent: Agent;
  private readonly policy: RetryPolicy;
  private readonly timeouts: Required<TimeoutOptions>;
  readonly logger: Logger;
  private authenticator: Promise<Authenticator> | undefined;
  private triedPlainHttp = false;

  constructor(
    registry: string,
    repository: string,
    private readonly stats: StatsCounter,
    private readonly options: RegistryClientOptions = {},
  ) {
    this.registry = registry;
    this.repository = repository;
    const plain = isLoopbackRegistry(registry);
    this.base = new URL(options.endpoint?.url ?? `${plain ? 'http' : 'https'}://${registryEndpointHost(registry)}`);
    this.policy = retryPolicy(typeof options.retries === 'number' ? { retries: options.retries } : options.retries);
    this.timeouts = {
      connectMs: options.timeouts?.connectMs ?? 10_000,
      headersMs: options.timeouts?.headersMs ?? 30_000,
      bodyMs: options.timeouts?.bodyMs ?? 30_000,
    };
    this.logger = (options.logger ?? silentLogger).child({ registry, repository });
    this.agent = new Agent({
      connections: options.connectionsPerHost ?? 8,
      pipelining: 1,
      headersTimeout: this.timeouts.headersMs,
      bodyTimeout: this.timeouts.bodyMs,
      connect: { timeout: this.timeouts.connectMs, rejectUnauthorized: !options.insecure, ...endpointTls(options.endpoint) },
    });
  }

  /** Path of a manifest or blob on this client's endpoint (`/v2/<repo>/<kind>/<name>` by default). */
  apiPath(kind: 'manifests' | 'blobs' | 'referrers', name: string, query: Record<string, string> = {}): string {
    const endpoint = this.options.endpoint;
    const params = new URLSearchParams({ ...query, ...endpoint?.query }).toString();
    return `${endpoint?.apiPath ?? '/v2'}/${this.repository}/${kind}/${name}${params ? `?${params}` : ''}`;
  }

  /** `registry R repository P`, the prefix of every error message. */
  describe(): string {
    const via = this.options.endpoint ? ` via ${this.base.host}` : '';
    return `registry ${this.registry}${via} repository ${this.repository}`;
  }

  get origin(): string {
    return this.base.origin;
  }

  private auth(): Promise<Authenticator> {
    // A mirror authenticates with its own credentials (containerd looks them up by host too).
    const credentialHost = this.options.endpoint ? this.base.host : this.registry;
    const resolve = () =>
      resolveCredentials(credentialHost, {
        ...(this.options.credentials ? { credentials: this.options.credentials } : {}),
        ...(this.options.env ? { env: this.options.env } : {}),
        ...(this.options.dockerConfigDir ? { dockerConfigDir: this.options.dockerConfigDir } : {}),
      });
    this.authenticator ??= resolve().then((credentials: ResolvedCredentials | undefined) => {
      if (credentials) this.logger.debug('using registry credentials', { source: credentials.source });
      // Long-lived mounts outlive credentials (rotated config.json, helpers, ECR's 12 h):
      // re-read them when a token is due or a registry refuses them. Explicit ones are fixed.
      const reload = this.options.credentials ? undefined : resolve;
      return new Authenticator(credentialHost, credentials, (url, headers) => this.fetchToken(url, headers), reload, this.logger);
    });
    return this.authenticator;
  }

  private async fetchToken(url: URL, headers: Record<string, string>): Promise<{ status: number; body: Buffer }> {
    for (let attempt = 0; ; attempt++) {
      try {
        this.stats.request();
        const response = await this.agent.request({ origin: url.origin, path: `${url.pathname}${url.search}`, method: 'GET', headers });
        const body = await this.readBody(
          { status: response.statusCode, headers: response.headers, body: response.body, url },
          'token request',
        );
        if (isRetryableStatus(response.statusCode) && attempt < this.policy.retries) {
          await sleep(backoffDelay(this.policy, attempt, parseRetryAfter(response.headers['retry-after'])));
          continue;
        }
        return { status: response.statusCode, body };
      } catch (error) {
        if (isRetryableError(error) && attempt < this.policy.retries) {
          await sleep(backoffDelay(this.policy, attempt));
          continue;
        }
        throw this.mapError(error, `token request to ${url.origin}`);
      }
    }
  }

  /** Turns an undici/network error into a ClipError naming registry, repository and action. */
  mapError(error: unknown, what: string): Error {
    if (isClipError(error)) return error;
    const code = (error as { code?: unknown } | undefined)?.code;
    switch (code) {
      case 'UND_ERR_CONNECT_TIMEOUT':
        return new TimeoutError(`${this.describe()}: ${what}: connecting timed out after ${this.timeouts.connectMs} ms`);
      case 'UND_ERR_HEADERS_TIMEOUT':
        return new TimeoutError(`${this.describe()}: ${what}: no response within ${this.timeouts.headersMs} ms`);
      case 'UND_ERR_BODY_TIMEOUT':
        return new TimeoutError(`${this.describe()}: ${what}: response body stalled for ${this.timeouts.bodyMs} ms`);
      default: {
        if ((error as { name?: unknown } | undefined)?.name === 'AbortError') return error as Error;
        const message = error instanceof Error ? error.message : String(error);
        const hint = /wrong version number/i.test(message) ? ' (the registry seems to speak plain HTTP; use insecure / --insecure)' : '';
        return new RegistryError(`${this.describe()}: ${what} failed: ${typeof code === 'string' ? `${code} ` : ''}${message}${hint}`, {
          cause: error,
        });
      }
    }
  }

  private isTlsMismatch(error: unknown): boolean {
    const text = `${(error as { code?: unknown } | undefined)?.code ?? ''} ${error instanceof Error ? error.message : ''}`;
    return /EPROTO|SSL|wrong version number|ECONNRESET/i.test(text);
  }

  /** One request, following redirects; Authorization goes only to the registry's own origin. */
  private async sendOnce(request: RegistryRequest, authorization: string | undefined): Promise<RegistryResponse> {
    let url = new URL(request.path, this.base);
    for (let redirects = 0; ; redirects++) {
      const headers: Record<string, string> = {
        ...(url.origin === this.base.origin ? this.options.endpoint?.headers : {}),
        ...request.headers,
      };
      if (authorization && url.origin === this.base.origin) headers['authorization'] = authorization;
      this.stats.request();
      if (request.range) this.stats.range();
      const response = await this.agent.request({
        origin: url.origin,
        path: `${url.pathname}${url.search}`,
        method: request.method,
        headers,
        body: request.body ? Buffer.from(request.body.buffer, request.body.byteOffset, request.body.byteLength) : null,
        signal: request.signal ?? null,
      });
      const location = header(response.headers, 'location');
      if (request.followRedirects && REDIRECT_STATUSES.has(response.statusCode) && location) {
        await response.body.dump();
        if (redirects >= MAX_REDIRECTS)
          throw new RegistryError(`${this.describe()}: ${request.what}: more than ${MAX_REDIRECTS} redirects`);
        url = new URL(location, url);
        this.logger.debug('following redirect', { what: request.what, to: url.origin });
        continue;
      }
      return { status: response.statusCode, headers: response.headers, body: response.body, url };
    }
  }

  /**
   * Sends a request with auth and retries. Retryable failures (connection errors, 429, 5xx)
   * are retried with backoff; once retries run out they throw. 401/403 throw AuthError.
   * Any other status is returned for the caller to interpret; its body must be consumed.
   */
  async send(request: RegistryRequest): Promise<RegistryResponse> {
    const auth = await this.auth();
    const retries = request.noRetry ? 0 : this.policy.retries;
    let authRetried = false;
    let rotationWaited = false;
    let generation = auth.generation;
    let sentAuthorization: string | undefined;
    for (let attempt = 0; ; ) {
      let response: RegistryResponse;
      try {
        generation = auth.generation;
        sentAuthorization = await auth.header(request.scopes);
        response = await this.sendOnce(request, sentAuthorization);
      } catch (error) {
        if (request.signal?.aborted) throw error;
        if (error instanceof AuthError && !rotationWaited) {
          // The token server refused the credentials just read: as with a registry 401 below,
          // a rotation may be half done (password changed, config not yet rewritten). Once.
          rotationWaited = true;
          if (await auth.awaitRotation(generation)) continue;
        }
        if (this.options.insecure && !this.triedPlainHttp && this.base.protocol === 'https:' && this.isTlsMismatch(error)) {
          this.triedPlainHttp = true;
          this.base = new URL(`http://${this.base.host}`);
          this.logger.warn('registry does not speak TLS; using plain HTTP (insecure)', {});
          continue;
        }
        if (isRetryableError(error) && attempt < retries) {
          const delay = backoffDelay(this.policy, attempt++);
          this.logger.debug('retrying after connection error', { what: request.what, attempt, delay_ms: Math.round(delay) });
          await sleep(delay, request.signal);
          continue;
        }
        throw this.mapError(error, request.what);
      }

      if (response.status === 401 && !authRetried) {
        authRetried = true;
        await this.discard(response);
        if (auth.accept(response.headers['www-authenticate'])) {
          // Refused with a token or password: drop tokens, re-read credentials. A request sent
          // before any challenge was known (several start at once) only learned the challenge:
          // invalidating then would throw away the token another request just fetched.
          if (sentAuthorization !== undefined) await auth.invalidate();
          continue;
        }
        throw new AuthError(`${this.describe()}: ${request.what}: HTTP 401 without a usable WWW-Authenticate challenge`);
      }
      if (response.status === 401 && !rotationWaited) {
        // Refused with what was just re-read: a rotation may be half done. Once per request.
        rotationWaited = true;
        if (await auth.awaitRotation(generation)) {
          await this.discard(response);
          continue;
        }
      }
      if (response.status === 401 || response.status === 403) {
        const detail = registryErrorDetail(await this.readBody(response, request.what).catch(() => Buffer.alloc(0)));
        throw new AuthError(
          `${this.describe()}: ${request.what}: ${response.status === 401 ? 'authentication failed' : 'access denied'} ` +
            `(HTTP ${response.status}${detail ? `, ${detail}` : ''}) with ${auth.describeCredentials()}`,
        );
      }
      if (isRetryableStatus(response.status)) {
        const retryAfter = parseRetryAfter(response.headers['retry-after']);
        const detail = registryErrorDetail(await this.readBody(response, request.what).catch(() => Buffer.alloc(0)));
        if (attempt < retries) {
          const delay = backoffDelay(this.policy, attempt++, retryAfter);
          this.logger.debug('retrying after HTTP error', {
            what: request.what,
            status: response.status,
            attempt,
            delay_ms: Math.round(delay),
          });
          await sleep(delay, request.signal);
          continue;
        }
        throw new RegistryError(
          `${this.describe()}: ${request.what}: HTTP ${response.status}${detail ? ` (${detail})` : ''} after ${attempt + 1} attempts`,
          { status: response.status },
        );
      }
      return response;
    }
  }

  /** Reads a whole response body (counting bytes), mapping stalls to TimeoutError. */
  async readBody(response: RegistryResponse, what: string, limit = 64 * 1024 * 1024): Promise<Buffer> {
    const chunks: Buffer[] = [];
    let total = 0;
    try {
      for await (const chunk of response.body) {
        const buffer = chunk as Buffer;
        total += buffer.length;
        this.stats.received(buffer.length);
        if (total > limit) {
          response.body.destroy();
          throw new RegistryError(`${this.describe()}: ${what}: response larger than ${limit} bytes`);
        }
        chunks.push(buffer);
      }
    } catch (error) {
      throw this.mapError(error, what);
    }
    return Buffer.concat(chunks);
  }

  /** Drops a response body we do not need (keeps the connection reusable when small). */
  async discard(response: RegistryResponse): Promise<void> {
    try {
      await response.body.dump({ limit: 256 * 1024 });
    } catch {
      // the connection is closed instead; nothing to report
    }
  }

  /** Error for an unexpected status, with the registry's own error code if it sent one. */
  async unexpected(response: RegistryResponse, what: string): Promise<RegistryError> {
    const detail = registryErrorDetail(await this.readBody(response, what).catch(() => Buffer.alloc(0)));
    return new RegistryError(`${this.describe()}: ${what}: unexpected HTTP ${response.status}${detail ? ` (${detail})` : ''}`, {
      status: response.status,
    });
  }

  get retryPolicy(): RetryPolicy {
    return this.policy;
  }

  async close(): Promise<void> {
    await this.agent.close();
  }
}
