// containerd's registry host configuration (docs/hosts.md, remotes/docker/config/hosts.go):
// `<hosts-dir>/<host dir>/hosts.toml` lists, in file order, `[host."<url>"]` mirrors, then the
// `server` (the upstream) as the last fallback. The host dir of `registry:5000` is the first of
// `registry_5000_`, `registry:5000`, `_default` that exists. A dir without hosts.toml uses
// Docker's certificate files (`*.crt` CAs, `*.cert`/`*.key` client pairs) for the default host.
// Unlike containerd (which logs and ignores a bad file), a parse error is a typed error naming
// the file: a fleet with a broken mirror config should fail loudly, not silently hit the origin.
import { readdir, readFile, stat } from 'node:fs/promises';
import { isAbsolute, join } from 'node:path';
import { parse, TomlError } from 'smol-toml';
import { ClipError } from '@clip/shared';

/** A hosts.toml that cannot be read or does not follow containerd's schema. */
export class HostsConfigError extends ClipError {
  constructor(file: string, detail: string, options?: { cause?: unknown }) {
    super('CLIP_E_HOSTS_CONFIG', `bad registry hosts file ${file}: ${detail}`, options);
  }
}

export type HostCapability = 'pull' | 'resolve' | 'push' | 'referrers';
const ALL_CAPABILITIES: HostCapability[] = ['pull', 'resolve', 'push', 'referrers'];

export interface HostConfig {
  /** `http` or `https`; undefined for the implicit default host (the registry itself). */
  scheme?: 'http' | 'https';
  /** `host[:port]`; undefined for the implicit default host. */
  host?: string;
  /** API path prefix: `/v2` unless `override_path` (then the URL's path as written). */
  path: string;
  capabilities: HostCapability[];
  /** Absolute paths of CA certificate files. */
  ca: string[];
  /** Client certificate pairs [cert, key]; key undefined when the cert file holds the key. */
  client: Array<[string, string | undefined]>;
  skipVerify?: boolean;
  header: Record<string, string[]>;
  /** `dial_timeout` (a Go duration such as `500ms`, `2s`), ms. */
  dialTimeoutMs?: number;
  /** True for the last entry (the `server`, or the registry itself when there is none). */
  isServer: boolean;
}

export interface LoadedHosts {
  /** The directory the configuration came from. */
  dir: string;
  /** Mirrors in file order, then the server. */
  hosts: HostConfig[];
}

/** containerd's `hostDirectory`: `host:port` → `host_port_`. */
export function hostDirectoryName(host: string): string {
  const idx = host.lastIndexOf(':');
  return idx > 0 ? `${host.slice(0, idx)}_${host.slice(idx + 1)}_` : host;
}

/** The directories containerd looks in for `host`, in order. */
export function hostDirCandidates(root: string, host: string): string[] {
  const dirs: string[] = [];
  const special = hostDirectoryName(host);
  if (special !== host) dirs.push(join(root, special));
  dirs.push(join(root, host), join(root, '_default'));
  return dirs;
}

async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT' || (error as NodeJS.ErrnoException).code === 'ENOTDIR') return false;
    throw error;
  }
}

/** Host configuration for `registry` (e.g. `127.0.0.1:5000`) under `root`; undefined when none applies. */
export async function loadHostsConfig(root: string, registry: string): Promise<LoadedHosts | undefined> {
  for (const dir of hostDirCandidates(root, registry)) {
    if (!(await isDirectory(dir))) continue;
    const file = join(dir, 'hosts.toml');
    let text: string | undefined;
    try {
      text = await readFile(file, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw new HostsConfigError(file, (error as Error).message, { cause: error });
    }
    if (text === undefined || text.length === 0) return { dir, hosts: [await certFilesHost(dir)] };
    return { dir, hosts: parseHostsToml(text, file, dir) };
  }
  return undefined;
}

/** Docker's certs.d pattern: the default host with the dir's `*.crt` CAs and `*.cert`/`*.key` pairs. */
async function certFilesHost(dir: string): Promise<HostConfig> {
  const names = (await readdir(dir, { withFileTypes: true }))
    .filter((e) => !e.isDirectory())
    .map((e) => e.name)
    .sort();
  const host = defaultHost();
  for (const name of names) {
    if (name.endsWith('.crt')) host.ca.push(join(dir, name));
    if (name.endsWith('.cert')) {
      const key = `${name.slice(0, -5)}.key`;
      host.client.push([join(dir, name), names.includes(key) ? join(dir, key) : undefined]);
    }
  }
  return host;
}

function defaultHost(): HostConfig {
  return { path: '/v2', capabilities: [...ALL_CAPABILITIES], ca: [], client: [], header: {}, isServer: true };
}

type TomlTable = Record<string, unknown>;

function isTable(value: unknown): value is TomlTable {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Date);
}

/** Parses hosts.toml text (`file` and `baseDir` name it in errors and resolve relative cert paths). */
export function parseHostsToml(text: string, file: string, baseDir: string): HostConfig[] {
  let doc: TomlTable;
  try {
    doc = parse(text) as TomlTable;
  } catch (error) {
    const where = error instanceof TomlError ? ` (line ${error.line}, column ${error.column})` : '';
    throw new HostsConfigError(file, `not valid TOML${where}: ${(error as Error).message.split('\n')[0]}`, { cause: error });
  }
  const hosts: HostConfig[] = [];
  const hostTables = doc['host'];
  if (hostTables !== undefined) {
    if (!isTable(hostTables)) throw new HostsConfigError(file, '`host` must be a table of [host."<url>"] entries');
    // smol-toml keeps tables in file order (string keys keep insertion order): containerd's order.
    for (const [url, table] of Object.entries(hostTables)) {
      if (!isTable(table)) throw new HostsConfigError(file, `[host.${JSON.stringify(url)}] must be a table`);
      hosts.push(parseHostEntry(url, table, file, baseDir, false));
    }
  }
  const server = doc['server'];
  if (server !== undefined && typeof server !== 'string') throw new HostsConfigError(file, '`server` must be a string');
  hosts.push(parseHostEntry(server ?? '', doc, file, baseDir, true));
  return hosts;
}

const DURATION_UNITS: Record<string, number> = { ns: 1e-6, us: 1e-3, µs: 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Go's time.ParseDuration for positive values (`1.5s`, `1m30s`, `250ms`) → ms. */
export function parseGoDuration(text: string): number | undefined {
  const re = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)/gy;
  let total = 0;
  let matched = 0;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    total += Number(m[1]) * DURATION_UNITS[m[2]!]!;
    matched = re.lastIndex;
  }
  return matched === text.length && text.length > 0 ? total : undefined;
}

function stringList(value: unknown, what: string, file: string): string[] {
  if (typeof value === 'string') return [value];
  if (Array.isArray(value) && value.every((v) => typeof v === 'string')) return value as string[];
  throw new HostsConfigError(file, `${what} must be a string or an array of strings`);
}

function absolute(path: string, baseDir: string): string {
  return isAbsolute(path) ? path : join(baseDir, path);
}

function parseHostEntry(server: string, table: TomlTable, file: string, baseDir: string, isServer: boolean): HostConfig {
  const where = isServer ? 'server' : `[host.${JSON.stringify(server)}]`;
  const overridePath = table['override_path'];
  if (overridePath !== undefined && typeof overridePath !== 'boolean')
    throw new HostsConfigError(file, `${where}: override_path must be true or false`);
  const result = defaultHost();
  result.isServer = isServer;
  if (server !== '') {
    const text = server.startsWith('http') ? server : `https://${server}`;
    let url: URL;
    try {
      url = new URL(text);
    } catch {
      throw new HostsConfigError(file, `${where}: cannot parse ${JSON.stringify(server)} as a URL`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new HostsConfigError(file, `${where}: scheme must be http or https`);
    result.scheme = url.protocol === 'http:' ? 'http' : 'https';
    result.host = url.host;
    // containerd: a path is cleaned and gets /v2 appended unless it has it or override_path is set.
    let path = url.pathname === '/' ? '' : url.pathname.replace(/\/+$/, '');
    if (!overridePath && !path.endsWith('/v2')) path = `${path}/v2`;
    result.path = path;
  }
  const capabilities = table['capabilities'];
  if (capabilities !== undefined) {
    const list = stringList(capabilities, `${where}: capabilities`, file);
    if (list.length > 0) {
      result.capabilities = list.map((c) => {
        const lower = c.toLowerCase();
        if (!(ALL_CAPABILITIES as string[]).includes(lower))
          throw new HostsConfigError(file, `${where}: unknown capability ${JSON.stringify(c)}`);
        return lower as HostCapability;
      });
    }
  }
  const skipVerify = table['skip_verify'];
  if (skipVerify !== undefined) {
    if (typeof skipVerify !== 'boolean') throw new HostsConfigError(file, `${where}: skip_verify must be true or false`);
    result.skipVerify = skipVerify;
  }
  if (table['ca'] !== undefined) result.ca = stringList(table['ca'], `${where}: ca`, file).map((p) => absolute(p, baseDir));
  const client = table['client'];
  if (client !== undefined) {
    const entries = typeof client === 'string' ? [client] : Array.isArray(client) ? client : undefined;
    if (!entries) throw new HostsConfigError(file, `${where}: client must be a path, or an array of paths or [cert, key] pairs`);
    for (const entry of entries) {
      if (typeof entry === 'string') result.client.push([absolute(entry, baseDir), undefined]);
      else if (Array.isArray(entry) && entry.length === 2 && entry.every((e) => typeof e === 'string')) {
        result.client.push([absolute(entry[0] as string, baseDir), absolute(entry[1] as string, baseDir)]);
      } else throw new HostsConfigError(file, `${where}: client entries must be a path or a [cert, key] pair`);
    }
  }
  const dialTimeout = table['dial_timeout'];
  if (dialTimeout !== undefined) {
    const ms = typeof dialTimeout === 'string' ? parseGoDuration(dialTimeout) : undefined;
    if (ms === undefined) throw new HostsConfigError(file, `${where}: dial_timeout must be a duration such as "500ms" or "2s"`);
    result.dialTimeoutMs = ms;
  }
  const header = table['header'];
  if (header !== undefined) {
    if (!isTable(header)) throw new HostsConfigError(file, `${where}: header must be a table`);
    for (const [name, value] of Object.entries(header))
      result.header[name] = stringList(value, `${where}: header ${JSON.stringify(name)}`, file);
  }
  return result;
}
