// Starts a real registry (Debian's `docker-registry`, distribution v2) on a free loopback
// port with temporary storage. Every started registry is stopped on process exit too, so a
// failing test run never leaves one behind.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface RegistryUser {
  username: string;
  password: string;
}

export interface RegistryAuthHtpasswd {
  kind: 'htpasswd';
  /** Contents of an htpasswd file (bcrypt entries), used as is. */
  htpasswd?: string;
  /** Users added to the file, hashed with bcrypt by `htpasswd -B` (apache2-utils). */
  users?: RegistryUser[];
}

export interface RegistryAuthToken {
  kind: 'token';
  realm: string;
  service: string;
  issuer: string;
  /** PEM certificate bundle whose key signs the tokens. */
  rootCertBundle: string;
}

export interface RegistryOptions {
  auth?: RegistryAuthHtpasswd | RegistryAuthToken;
  /** Existing storage directory (kept on stop); default a new temporary one (deleted on stop). */
  storageDir?: string;
  /** Fixed port; default a free one. */
  port?: number;
  /** Address to listen on; default 127.0.0.1. */
  host?: string;
  /** Pull-through cache (distribution's proxy mode) of this upstream registry URL. */
  proxy?: { remoteUrl: string; username?: string; password?: string };
}

export interface RunningRegistry {
  /** `127.0.0.1:<port>`, usable as the registry part of an image reference. */
  host: string;
  port: number;
  url: string;
  storageDir: string;
  /** The htpasswd file the registry reads (htpasswd auth); rewrite it to rotate passwords. */
  htpasswdPath?: string;
  logs(): string;
  stop(): Promise<void>;
}

const running = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

/** One bcrypt htpasswd line (`user:$2y$...`), via `htpasswd -niB` (password on stdin, not argv). */
export async function htpasswdLine(user: RegistryUser): Promise<string> {
  if (user.username.includes(':')) throw new Error(`htpasswd user names cannot contain ':' (${user.username})`);
  return new Promise((resolve, reject) => {
    const child = spawn('htpasswd', ['-niB', user.username], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
    child.once('error', (error) => reject(new Error(`cannot run htpasswd (install apache2-utils): ${error.message}`)));
    child.once('close', (code) => {
      const line = out.trim();
      if (code === 0 && line.startsWith(`${user.username}:$2`)) resolve(line);
      else reject(new Error(`htpasswd exited with ${code}: ${err.trim()}`));
    });
    child.stdin.end(`${user.password}\n`);
  });
}

export async function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, host, () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

function configYaml(
  storageDir: string,
  addr: string,
  dir: string,
  auth: RegistryOptions['auth'],
  proxy?: RegistryOptions['proxy'],
): string {
  const lines = [
    'version: 0.1',
    'log:',
    '  level: warn',
    '  accesslog:',
    '    disabled: false',
    'storage:',
    '  delete:',
    '    enabled: true',
    '  filesystem:',
    `    rootdirectory: ${storageDir}`,
    'http:',
    `  addr: ${addr}`,
  ];
  if (auth?.kind === 'htpasswd') {
    lines.push('auth:', '  htpasswd:', '    realm: clip-test', `    path: ${join(dir, 'htpasswd')}`);
  } else if (auth?.kind === 'token') {
    lines.push(
      'auth:',
      '  token:',
      `    realm: ${auth.realm}`,
      `    service: ${auth.service}`,
      `    issuer: ${auth.issuer}`,
      `    rootcertbundle: ${join(dir, 'token-ca.pem')}`,
    );
  }
  if (proxy) {
    lines.push('proxy:', `  remoteurl: ${proxy.remoteUrl}`);
    if (proxy.username !== undefined)
      lines.push(`  username: ${JSON.stringify(proxy.username)}`, `  password: ${JSON.stringify(proxy.password ?? '')}`);
  }
  return `${lines.join('\n')}\n`;
}

/** Thrown when the chosen port was taken between freePort() and the registry's bind. */
class PortTakenError extends Error {}

async function waitUntilServing(url: string, child: ChildProcess, output: () => string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) {
      if (/address already in use/.test(output())) throw new PortTakenError(`${url}: address already in use`);
      throw new Error(`registry exited with code ${child.exitCode}`);
    }
    try {
      // Bounded: a non-HTTP process holding the port can leave fetch waiting forever.
      const response = await fetch(`${url}/v2/`, { signal: AbortSignal.timeout(2000) });
      // 200 (anonymous) or 401 (auth configured) both mean a registry is serving. It is ours
      // if ours is still running a moment later (a lost bind makes it exit at once).
      if (response.status === 200 || response.status === 401) {
        await new Promise((resolve) => setTimeout(resolve, 100));
        if (child.exitCode === null) return;
        continue;
      }
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`registry at ${url} did not start within ${timeoutMs} ms`);
}

export async function startRegistry(options: RegistryOptions = {}): Promise<RunningRegistry> {
  // A port from freePort() can be taken by another process before the registry binds it
  // (test files run in parallel): then try another one.
  for (let attempt = 1; ; attempt++) {
    try {
      return await startRegistryOnce(options);
    } catch (error) {
      if (!(error instanceof PortTakenError) || options.port !== undefined || attempt === 3) throw error;
    }
  }
}

async function startRegistryOnce(options: RegistryOptions): Promise<RunningRegistry> {
  const dir = await mkdtemp(join(tmpdir(), 'clip-registry-'));
  const storageDir = options.storageDir ?? join(dir, 'storage');
  const host = options.host ?? '127.0.0.1';
  const port = options.port ?? (await freePort(host));
  if (options.auth?.kind === 'htpasswd') {
    const lines = options.auth.htpasswd ? [options.auth.htpasswd.trimEnd()] : [];
    for (const user of options.auth.users ?? []) lines.push(await htpasswdLine(user));
    if (lines.length === 0) throw new Error('htpasswd auth needs `htpasswd` text or `users`');
    await writeFile(join(dir, 'htpasswd'), `${lines.join('\n')}\n`);
  }
  if (options.auth?.kind === 'token') await writeFile(join(dir, 'token-ca.pem'), options.auth.rootCertBundle);
  const configPath = join(dir, 'config.yml');
  await writeFile(configPath, configYaml(storageDir, `${host}:${port}`, dir, options.auth, options.proxy));

  const child = spawn('docker-registry', ['serve', configPath], { stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(child);
  let output = '';
  const keep = (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-200_000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.once('exit', () => running.delete(child));

  const url = `http://${host}:${port}`;
  try {
    await waitUntilServing(url, child, () => output, 30_000);
  } catch (error) {
    child.kill('SIGKILL');
    await exited;
    await rm(dir, { recursive: true, force: true });
    if (error instanceof PortTakenError) throw error;
    throw new Error(`${(error as Error).message}\n${output}`);
  }
  return {
    host: `${host}:${port}`,
    port,
    url,
    storageDir,
    ...(options.auth?.kind === 'htpasswd' ? { htpasswdPath: join(dir, 'htpasswd') } : {}),
    logs: () => output,
    async stop() {
      if (child.exitCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
        await exited;
        clearTimeout(timer);
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}
