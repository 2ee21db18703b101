// A token server for distribution's token auth: issues RS256 JWTs signed by a fresh
// self-signed certificate (made with openssl) that the registry trusts via its
// rootcertbundle; the cert travels in the token's `x5c` header. Anonymous callers get pull
// only; callers with the right Basic credentials get what they ask for.
import { execFile } from 'node:child_process';
import { createSign, randomUUID, X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface TokenServer {
  realm: string;
  service: string;
  issuer: string;
  rootCertBundle: string;
  /** One line per token request: user (or anonymous) and scopes, no secrets. */
  log: Array<{ user: string; scopes: string[]; granted: boolean }>;
  /** Rotates the password: from now on only the new one gets tokens. */
  setPassword(password: string): void;
  stop(): Promise<void>;
}

function base64url(data: Buffer | string): string {
  return Buffer.from(data).toString('base64url');
}

export async function startTokenServer(options: {
  username: string;
  password: string;
  /** Token lifetime in seconds (default 300), announced in `expires_in`. */
  expiresIn?: number;
  /**
   * Seconds from issue to the token's `exp` claim (default: expiresIn). distribution's registry
   * accepts a token until 60 s past `exp` (clock-skew leeway): `expiresIn - 60` makes it refuse
   * the token when the announced lifetime ends, less than that before (a revoked token).
   */
  signedExpiresIn?: number;
  /** false: anonymous callers are refused (401) instead of getting pull tokens. */
  anonymous?: boolean;
}): Promise<TokenServer> {
  let password = options.password;
  const dir = await mkdtemp(join(tmpdir(), 'clip-token-'));
  await run('openssl', [
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-days',
    '2',
    '-subj',
    '/CN=clip-test-token',
    '-keyout',
    join(dir, 'key.pem'),
    '-out',
    join(dir, 'cert.pem'),
  ]);
  const key = await readFile(join(dir, 'key.pem'), 'utf8');
  const certPem = await readFile(join(dir, 'cert.pem'), 'utf8');
  const certDer = new X509Certificate(certPem).raw;
  const service = 'clip-test-registry';
  const issuer = 'clip-test-issuer';
  const log: TokenServer['log'] = [];

  const sign = (subject: string, access: Array<{ type: string; name: string; actions: string[] }>) => {
    const now = Math.floor(Date.now() / 1000);
    const header = { alg: 'RS256', typ: 'JWT', x5c: [certDer.toString('base64')] };
    const claims = {
      iss: issuer,
      sub: subject,
      aud: service,
      exp: now + (options.signedExpiresIn ?? options.expiresIn ?? 300),
      nbf: now - 10,
      iat: now,
      jti: randomUUID(),
      access,
    };
    const input = `${base64url(JSON.stringify(header))}.${base64url(JSON.stringify(claims))}`;
    const signature = createSign('RSA-SHA256').update(input).sign(key);
    return `${input}.${base64url(signature)}`;
  };

  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const scopes = url.searchParams.getAll('scope');
    const authorization = req.headers['authorization'];
    let user = 'anonymous';
    if (authorization?.startsWith('Basic ')) {
      const [name, ...rest] = Buffer.from(authorization.slice(6), 'base64').toString('utf8').split(':');
      if (name !== options.username || rest.join(':') !== password) {
        log.push({ user: name ?? '', scopes, granted: false });
        res.writeHead(401, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ details: 'bad credentials' }));
        return;
      }
      user = name;
    } else if (options.anonymous === false) {
      log.push({ user, scopes, granted: false });
      res.writeHead(401, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ details: 'credentials required' }));
      return;
    }
    const access = scopes.flatMap((scope) => {
      const [type, name, actions] = scope.split(':');
      if (!type || !name || !actions) return [];
      const wanted = actions.split(',');
      return [{ type, name, actions: user === 'anonymous' ? wanted.filter((action) => action === 'pull') : wanted }];
    });
    log.push({ user, scopes, granted: true });
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ token: sign(user, access), expires_in: options.expiresIn ?? 300, issued_at: new Date().toISOString() }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    realm: `http://127.0.0.1:${port}/token`,
    service,
    issuer,
    rootCertBundle: certPem,
    log,
    setPassword(next: string) {
      password = next;
    },
    async stop() {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await rm(dir, { recursive: true, force: true });
    },
  };
}
