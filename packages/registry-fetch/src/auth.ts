// Registry authentication (distribution's token spec): a 401 carries
// `WWW-Authenticate: Bearer realm="…",service="…",scope="…"` (get a token from the realm,
// anonymously or with Basic credentials, and cache it per scope until it expires) or
// `Basic realm="…"` (send the credentials on every request).
import { AuthError } from '@clip/shared';
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
export type TokenFetcher = (
  url: URL,
  headers: Record<string, string>,
) => Promise<{ status: number; body: Buffer }>;

interface CachedToken {
  token: string;
  expiresAt: number;
}

/** Refresh a little before expiry so a token does not die in flight. */
const EXPIRY_MARGIN_MS = 10_000;
/** Default lifetime the token spec gives tokens without expires_in. */
const DEFAULT_TOKEN_SECONDS = 60;

export class Authenticator {
  private challenge: Challenge | undefined;
  private readonly tokens = new Map<string, CachedToken>();
  private readonly pending = new Map<string, Promise<string>>();

  constructor(
    private readonly registry: string,
    private readonly credentials: ResolvedCredentials | undefined,
    private readonly fetchToken: TokenFetcher,
  ) {}

  /** What the registry last asked for; undefined until the first 401. */
  get scheme(): Challenge['scheme'] | undefined {
    return this.challenge?.scheme;
  }

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
    if (cached && cached.expiresAt > Date.now()) return `Bearer ${cached.token}`;
    let pending = this.pending.get(key);
    if (!pending) {
      pending = this.requestToken(challenge, scopes, key).finally(() => this.pending.delete(key));
      this.pending.set(key, pending);
    }
    return `Bearer ${await pending}`;
  }

  /** Forgets cached tokens (after a 401 with a token that should have been good). */
  invalidate(): void {
    this.tokens.clear();
  }

  private async requestToken(challenge: Challenge, scopes: string[], key: string): Promise<string> {
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
    this.tokens.set(key, { token, expiresAt: start + lifetime - Math.min(EXPIRY_MARGIN_MS, lifetime / 2) });
    return token;
  }
}

/** The token scope for a repository: `repository:<name>:pull` or `…:pull,push`. */
export function repositoryScope(repository: string, actions: 'pull' | 'push'): string {
  return `repository:${repository}:${actions === 'push' ? 'pull,push' : 'pull'}`;
}
