// Registry authentication (distribution's token spec): a 401 carries
// `WWW-Authenticate: Bearer realm="…",service="…",scope="…"` (get a token from the realm,
// anonymously or with Basic credentials, and cache it per scope until it expires) or
// `Basic realm="…"` (send the credentials on every request).
import { AuthError, silentLogger, type Logger } from '@clip/shared';
import type { ResolvedCredentials } from './credentials.js';

export interface Challenge {
  scheme: 'bearer' | 'basic';
  params: Record<string, string>;
}

/** Parses a WWW-Authenticate header (one challenge; the registry only sends one). */
export function parseChallenge(header: string | string[] | undefined): Challenge | undefined {
  const text = Array.isArray(header) ? header[0] : header;
  if (!text) return undefined;
  const match = /^\s*(\w+)\s*(.*)$/s.exec(text);
  if (!match) return undefined;
  const scheme = match[1]!.toLowerCase();
  if (scheme !== 'bearer' && scheme !== 'basic') return undefined;
  const params: Record<string, string> = {};
  const paramRe = /([\w-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))\s*,?\s*/g;
  for (let m = paramRe.exec(match[2] ?? ''); m; m = paramRe.exec(match[2] ?? '')) {
    params[m[1]!.toLowerCase()] = m[2] !== undefined ? m[2].replace(/\\(.)/g, '$1') : (m[3] ?? '');
  }
  return { scheme, params };
}

export function basicHeader(credentials: { username: string; password: string }): string {
  return `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64')}`;
}

/** Fetches a token from the realm. Returns the token and its lifetime. */
export type TokenFetcher = (url: URL, headers: Record<string, string>) => Promise<{ status: number; body: Buffer }>;

interface CachedToken {
  token: string;
  /** Ask for a new one from here on (before expiry, so it never dies in flight)... */
  refreshAt: number;
  /** ...but keep using this one until then if the refresh fails. */
  expiresAt: number;
}

/** Refresh a little before expiry so a token does not die in flight. */
const EXPIRY_MARGIN_MS = 10_000;
/** How long a refused request waits for a half-done credential rotation to complete. */
const ROTATION_WAIT_MS = 1000;
/** Default lifetime the token spec gives tokens without expires_in. */
const DEFAULT_TOKEN_SECONDS = 60;

export class Authenticator {
  private challenge: Challenge | undefined;
  private readonly tokens = new Map<string, CachedToken>();
  /** Bumped whenever the credentials change (a request can tell whether it used old ones). */
  generation = 0;
  private readonly pending = new Map<string, Promise<string>>();

  /**
   * @param reload re-reads the credentials (config.json, helper, environment) when a token is
   *   requested or a registry refused them: they may have been rotated since.
   */
  constructor(
    private readonly registry: string,
    private credentials: ResolvedCredentials | undefined,
    private readonly fetchToken: TokenFetcher,
    private readonly reload?: () => Promise<ResolvedCredentials | undefined>,
    private readonly logger: Logger = silentLogger,
  ) {}

  /** Where the credentials came from, for error messages (`anonymous` when none). */
  describeCredentials(): string {
    return this.credentials ? `credentials from ${this.credentials.source}` : 'anonymous';
  }

  /** Remembers the challenge of a 401; returns false when there is nothing new to try. */
  accept(header: string | string[] | undefined): boolean {
    const challenge = parseChallenge(header);
    if (!challenge) return false;
    this.challenge = challenge;
    return true;
  }

  /**
   * The Authorization header for a request needing `scopes`, or undefined (anonymous, or no
   * challenge seen yet). Fetches and caches a bearer token when needed.
   */
  async header(scopes: string[]): Promise<string | undefined> {
    const challenge = this.challenge;
    if (!challenge) return undefined;
    if (challenge.scheme === 'basic') {
      if (!this.credentials) throw new AuthError(`registry ${this.registry} requires credentials (Basic auth) and none were found`);
      return basicHeader(this.credentials);
    }
    const key = `${challenge.params['realm']}|${challenge.params['service']}|${[...scopes].sort().join(' ')}`;
    const cached = this.tokens.get(key);
    const now = Date.now();
    if (cached && cached.refreshAt > now) return `Bearer ${cached.token}`;
    let pending = this.pending.get(key);
    if (!pending) {
      pending = this.requestToken(challenge, scopes, key).finally(() => this.pending.delete(key));
      this.pending.set(key, pending);
    }
    try {
      return `Bearer ${await pending}`;
    } catch (error) {
      // An early refresh failed (token server down, credentials mid-rotation): the token
      // we have is still good for a while; the next request tries again.
      if (cached && cached.expiresAt > Date.now()) {
        // Try again in a second, not on every request meanwhile.
        cached.refreshAt = Math.min(cached.expiresAt, Date.now() + 1000);
        this.logger.warn('token refresh failed; using the current token until it expires', {
          registry: this.registry,
          error: (error as Error).message,
        });
        return `Bearer ${cached.token}`;
      }
      throw error;
    }
  }

  /** Forgets cached tokens and re-reads the credentials (after a 401 that should not have been). */
  async invalidate(): Promise<void> {
    this.tokens.clear();
    await this.reloadCredentials();
  }

  /**
   * After a refusal with credentials that were just re-read: a rotation may be half done
   * (registry first, config.json a moment later). Waits a little and re-reads; true when
   * they changed (worth one more try). False at once when they cannot be re-read.
   */
  async awaitRotation(usedGeneration: number): Promise<boolean> {
    if (!this.reload || !this.credentials) return false;
    // Another request already picked up new ones since this one was sent: retry with them.
    if (this.generation !== usedGeneration) return true;
    await new Promise((resolve) => setTimeout(resolve, ROTATION_WAIT_MS));
    this.tokens.clear();
    await this.reloadCredentials();
    return this.generation !== usedGeneration;
  }

  /** Re-reads the credentials; true when they changed. A failed read keeps the old ones. */
  private async reloadCredentials(): Promise<boolean> {
    if (!this.reload) return false;
    let fresh: ResolvedCredentials | undefined;
    try {
      fresh = await this.reload();
    } catch (error) {
      this.logger.debug('cannot re-read registry credentials; keeping the current ones', { error: (error as Error).message });
      return false;
    }
    const before = this.credentials;
    if (fresh?.username === before?.username && fresh?.password === before?.password) return false;
    this.credentials = fresh;
    this.generation++;
    this.logger.info('registry credentials changed; using the new ones', { registry: this.registry, source: fresh?.source ?? 'anonymous' });
    return true;
  }

  private async requestToken(challenge: Challenge, scopes: string[], key: string): Promise<string> {
    // Credentials may have been rotated since the last token: pick up the current ones.
    await this.reloadCredentials();
    try {
      return await this.requestTokenOnce(challenge, scopes, key);
    } catch (error) {
      // Refused: maybe rotated between the read above and now (or the registry first).
      if (error instanceof AuthError && /refused/.test(error.message) && (await this.reloadCredentials())) {
        return this.requestTokenOnce(challenge, scopes, key);
      }
      throw error;
    }
  }

  private async requestTokenOnce(challenge: Challenge, scopes: string[], key: string): Promise<string> {
    const realm = challenge.params['realm'];
    if (!realm) throw new AuthError(`registry ${this.registry} sent a Bearer challenge without a realm`);
    let url: URL;
    try {
      url = new URL(realm);
    } catch {
      throw new AuthError(`registry ${this.registry} sent a Bearer challenge with a bad realm ${JSON.stringify(realm)}`);
    }
    if (challenge.params['service']) url.searchParams.set('service', challenge.params['service']);
    for (const scope of scopes) url.searchParams.append('scope', scope);
    const headers: Record<string, string> = { accept: 'application/json' };
    if (this.credentials) headers['authorization'] = basicHeader(this.credentials);
    const { status, body } = await this.fetchToken(url, headers);
    if (status === 401 || status === 403) {
      throw new AuthError(
        `token server ${url.origin} refused ${this.describeCredentials()} for ${this.registry} (HTTP ${status}, scope ${scopes.join(' ')})`,
      );
    }
    if (status !== 200) throw new AuthError(`token server ${url.origin} answered HTTP ${status} for ${this.registry}`);
    let answer: { token?: string; access_token?: string; expires_in?: number; issued_at?: string };
    try {
      answer = JSON.parse(body.toString('utf8')) as typeof answer;
    } catch {
      throw new AuthError(`token server ${url.origin} sent an unreadable answer for ${this.registry}`);
    }
    const token = answer.token ?? answer.access_token;
    if (!token) throw new AuthError(`token server ${url.origin} sent no token for ${this.registry}`);
    const lifetime = (answer.expires_in ?? DEFAULT_TOKEN_SECONDS) * 1000;
    const issued = answer.issued_at ? Date.parse(answer.issued_at) : Number.NaN;
    const start = Number.isNaN(issued) ? Date.now() : Math.min(issued, Date.now());
    this.tokens.set(key, {
      token,
      refreshAt: start + lifetime - Math.min(EXPIRY_MARGIN_MS, lifetime / 2),
      expiresAt: start + lifetime - Math.min(1000, lifetime / 10),
    });
    return token;
  }
}

/** The token scope for a repository: `repository:<name>:pull` or `…:pull,push`. */
export function repositoryScope(repository: string, actions: 'pull' | 'push'): string {
  return `repository:${repository}:${actions === 'push' ? 'pull,push' : 'pull'}`;
}
