// Where registry credentials come from, first match wins:
//   1. explicit `credentials` passed by the caller
//   2. CLIP_REGISTRY_USERNAME / CLIP_REGISTRY_PASSWORD
//   3. docker config ($DOCKER_CONFIG/config.json or ~/.docker/config.json):
//      credHelpers[host] → auths[host] (base64 `auth` or username/password) → credsStore
// Secrets are only ever returned to the caller; nothing here logs them.
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { AuthError } from '@clip/shared';

export interface Credentials {
  username: string;
  password: string;
}

export interface ResolvedCredentials extends Credentials {
  /** Where they came from, safe to show (e.g. `docker config auths`); never the secret. */
  source: string;
}

export interface CredentialOptions {
  credentials?: Credentials;
  env?: NodeJS.ProcessEnv;
  /** Directory holding config.json; default $DOCKER_CONFIG or ~/.docker. */
  dockerConfigDir?: string;
}

interface DockerConfig {
  auths?: Record<string, { auth?: string; username?: string; password?: string; identitytoken?: string }>;
  credsStore?: string;
  credHelpers?: Record<string, string>;
}

const DOCKER_HUB_KEYS = ['https://index.docker.io/v1/', 'index.docker.io', 'docker.io', 'registry-1.docker.io'];

/** The keys docker may have stored a host's credentials under. */
function configKeys(host: string): string[] {
  if (host === 'docker.io' || host === 'index.docker.io' || host === 'registry-1.docker.io') return DOCKER_HUB_KEYS;
  return [host, `https://${host}`, `http://${host}`, `https://${host}/v1/`, `https://${host}/v2/`, `http://${host}/v2/`];
}

async function readDockerConfig(dir: string): Promise<DockerConfig | undefined> {
  let text: string;
  try {
    text = await readFile(join(dir, 'config.json'), 'utf8');
  } catch {
    return undefined;
  }
  try {
    return JSON.parse(text) as DockerConfig;
  } catch (error) {
    throw new AuthError(`cannot parse ${join(dir, 'config.json')}: not valid JSON`, { cause: error });
  }
}

/** Runs `docker-credential-<helper> get` with the host on stdin (the docker credential helper protocol). */
export function runCredentialHelper(helper: string, host: string, env?: NodeJS.ProcessEnv): Promise<Credentials | undefined> {
  return new Promise((resolve, reject) => {
    const child = execFile(`docker-credential-${helper}`, ['get'], { env: env ?? process.env, timeout: 30_000 }, (error, stdout) => {
      if (error) {
        // Helpers answer "credentials not found in native keychain" with exit code 1.
        if (/not found/i.test(String(stdout))) return resolve(undefined);
        return reject(
          new AuthError(
            `credential helper docker-credential-${helper} failed for ${host} (${(error as NodeJS.ErrnoException).code ?? 'error'})`,
          ),
        );
      }
      try {
        const answer = JSON.parse(stdout) as { Username?: string; Secret?: string };
        if (!answer.Secret) return resolve(undefined);
        resolve({ username: answer.Username ?? '', password: answer.Secret });
      } catch {
        reject(new AuthError(`credential helper docker-credential-${helper} gave an unreadable answer for ${host}`));
      }
    });
    child.stdin?.end(host);
  });
}

function fromAuthEntry(entry: NonNullable<DockerConfig['auths']>[string]): Credentials | undefined {
  if (entry.auth) {
    const decoded = Buffer.from(entry.auth, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon > 0) return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
  }
  if (entry.username !== undefined && entry.password !== undefined) return { username: entry.username, password: entry.password };
  return undefined;
}

/** The username of an entry that has one but no password (a mistake worth naming). */
function usernameOnly(entry: NonNullable<DockerConfig['auths']>[string]): string | undefined {
  if (entry.auth) {
    const decoded = Buffer.from(entry.auth, 'base64').toString('utf8');
    if (decoded !== '' && !decoded.includes(':')) return decoded;
  }
  return entry.username !== undefined && entry.password === undefined ? entry.username : undefined;
}

/** Credentials for a registry host (`host[:port]` as in references), or undefined for anonymous. */
export async function resolveCredentials(registryHost: string, options: CredentialOptions = {}): Promise<ResolvedCredentials | undefined> {
  if (options.credentials) return { ...options.credentials, source: 'explicit credentials' };
  const env = options.env ?? process.env;
  const envUser = env['CLIP_REGISTRY_USERNAME'];
  const envPassword = env['CLIP_REGISTRY_PASSWORD'];
  if (envUser !== undefined && envPassword !== undefined) {
    return { username: envUser, password: envPassword, source: 'CLIP_REGISTRY_USERNAME/CLIP_REGISTRY_PASSWORD' };
  }
  // Half a pair is a mistake to name, not "no credentials": use it (an empty password) so
  // a refusal says where it came from.
  if (envUser !== undefined)
    return { username: envUser, password: '', source: 'CLIP_REGISTRY_USERNAME (CLIP_REGISTRY_PASSWORD is not set)' };
  const dir = options.dockerConfigDir ?? env['DOCKER_CONFIG'] ?? join(homedir(), '.docker');
  const config = await readDockerConfig(dir);
  if (!config) return undefined;
  const keys = configKeys(registryHost);
  const helper = keys.map((key) => config.credHelpers?.[key]).find((name) => name !== undefined);
  if (helper) {
    const found = await runCredentialHelper(helper, registryHost, env);
    return found ? { ...found, source: `docker credential helper ${helper}` } : undefined;
  }
  for (const key of keys) {
    const entry = config.auths?.[key];
    const found = entry ? fromAuthEntry(entry) : undefined;
    if (found) return { ...found, source: `docker config auths (${join(dir, 'config.json')})` };
    const username = entry ? usernameOnly(entry) : undefined;
    if (username !== undefined)
      return { username, password: '', source: `docker config auths (${join(dir, 'config.json')}; a username without a password)` };
  }
  if (config.credsStore) {
    for (const key of registryHost === 'docker.io' ? ['https://index.docker.io/v1/'] : [registryHost]) {
      const found = await runCredentialHelper(config.credsStore, key, env);
      if (found) return { ...found, source: `docker credential store ${config.credsStore}` };
    }
  }
  return undefined;
}
