// Turns a registry's hosts.toml entries into one RegistrySource per host (each with its own
// connection pool, TLS settings, headers and credentials) plus the per-host state the
// fallback logic keeps: whether a host is down, which blobs it served cold (200 to a Range),
// and counters for metrics.
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { type Digest, isLoopbackRegistry, registryEndpointHost, type RegistryReference } from '@clip/shared';
import type { RegistryClientOptions, RegistryEndpoint } from '../registry-client.js';
import { RegistrySource } from '../registry-source.js';
import { HostsConfigError, type HostCapability, type HostConfig, type LoadedHosts } from './hosts-config.js';

/** What a host did, for metrics (`clip mount` metrics, `clip warm` output). */
export interface HostStats {
  /** `mirror` for `[host]` entries, `server` for the last one. */
  role: 'mirror' | 'server';
  /** `scheme://host[:port]` (or the registry name for the implicit default host). */
  host: string;
  /** Range reads sent to this host. */
  rangeRequests: number;
  /** Range reads it answered with 206. */
  rangesHonoured: number;
  /** Range reads it answered with a whole 200 body (a cold pull-through cache). */
  fullResponses: number;
  /** Body bytes used from it for range reads. */
  bytes: number;
  /** Reads this host passed on to the next one (cold, error, stall, not found). */
  fallbacks: number;
  errors: number;
  stalls: number;
  notFound: number;
  /** Reads that skipped this host (down, or the blob recently cold here). */
  skipped: number;
  /** Background reads of a cold 200 body to its end, so a read-through cache fills. */
  fillsStarted: number;
  fillsCompleted: number;
  fillBytes: number;
}

interface DigestState {
  /** The host answered a range of this blob with 206. */
  warm: boolean;
  coldUntil: number;
  /** When the last cold answer came, and the blob's length it gave. */
  coldSince: number;
  coldBytes?: number;
  strikes: number;
  /** Set while a first (probe) request for this blob is waiting for its response headers. */
  probe?: Promise<void>;
}

/** Cool-down after a failure: 1 s doubling to 30 s. */
function coolDown(strikes: number): number {
  return Math.min(30_000, 1000 * 2 ** Math.max(0, strikes - 1));
}

/**
 * Cool-down after a cold answer: 2 s doubling to 30 s. Every request for a blob distribution's
 * proxy is still fetching opens another upstream stream (dropped, but what the sockets buffered
 * crossed the origin link), so a cold blob is asked about rarely.
 */
function coldCoolDown(strikes: number): number {
  return Math.min(30_000, 2000 * 2 ** Math.max(0, strikes - 1));
}

/** A fill estimate longer than this is not waited for (the estimate may be wrong). */
const MAX_FILL_WAIT_MS = 30_000;
/** The cache's own upstream fetch shares the link with the dropped streams: leave it some room. */
const FILL_MARGIN = 1.5;

export class RegistryHost {
  readonly stats: HostStats;
  private downUntil = 0;
  private failures = 0;
  private readonly digests = new Map<Digest, DigestState>();

  constructor(
    readonly config: HostConfig,
    readonly source: RegistrySource,
    readonly isMirror: boolean,
  ) {
    this.stats = {
      role: isMirror ? 'mirror' : 'server',
      host: config.host ? `${config.scheme}://${config.host}` : source.ref.registry,
      rangeRequests: 0,
      rangesHonoured: 0,
      fullResponses: 0,
      bytes: 0,
      fallbacks: 0,
      errors: 0,
      stalls: 0,
      notFound: 0,
      skipped: 0,
      fillsStarted: 0,
      fillsCompleted: 0,
      fillBytes: 0,
    };
  }

  has(...capabilities: HostCapability[]): boolean {
    return capabilities.every((c) => this.config.capabilities.includes(c));
  }

  digest(digest: Digest): DigestState {
    let state = this.digests.get(digest);
    if (!state) {
      state = { warm: false, coldUntil: 0, coldSince: 0, strikes: 0 };
      this.digests.set(digest, state);
    }
    return state;
  }

  /**
   * Why a read of `digest` should not try this host now, if it should not. `fillTime`: how
   * long a cache takes to fill that many bytes from the origin (ms, undefined = unknown). A
   * cold blob is not asked again before its fill can have completed: distribution's proxy
   * answers every request for a blob it is still filling with one more upstream stream of it.
   */
  skipReason(digest: Digest, now = Date.now(), fillTime?: (bytes: number) => number | undefined): 'down' | 'cold' | undefined {
    if (this.downUntil > now) return 'down';
    const state = this.digests.get(digest);
    if (!state || state.warm) return undefined;
    if (state.coldUntil > now) return 'cold';
    const fillMs = state.coldBytes !== undefined ? fillTime?.(state.coldBytes) : undefined;
    if (fillMs !== undefined && state.coldSince + Math.min(MAX_FILL_WAIT_MS, fillMs * FILL_MARGIN) > now) return 'cold';
    return undefined;
  }

  markDown(): void {
    this.failures++;
    this.downUntil = Date.now() + coolDown(this.failures);
  }

  markUp(): void {
    this.failures = 0;
    this.downUntil = 0;
  }

  /** The blob is not (yet) in this cache (`size`: its length, from the 200): skip it here for a while, then look again. */
  markCold(digest: Digest, size?: number, now = Date.now()): void {
    const state = this.digest(digest);
    state.warm = false;
    state.strikes++;
    state.coldUntil = now + coldCoolDown(state.strikes);
    state.coldSince = now;
    if (size !== undefined) state.coldBytes = size;
  }

  markWarm(digest: Digest): void {
    const state = this.digest(digest);
    state.warm = true;
    state.strikes = 0;
    state.coldUntil = 0;
  }
}

/** containerd's isProxy: a host other than the registry gets `?ns=<registry>`. */
function isProxyFor(registry: string, host: string | undefined): boolean {
  if (host === undefined || host === registry) return false;
  return !(registry === 'docker.io' && host === 'registry-1.docker.io');
}

async function readPem(path: string, what: string, file: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    throw new HostsConfigError(file, `cannot read ${what} ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`, {
      cause: error,
    });
  }
}

async function endpointFor(registry: string, host: HostConfig, file: string): Promise<RegistryEndpoint | undefined> {
  const tls: NonNullable<RegistryEndpoint['tls']> = {};
  if (host.ca.length > 0) tls.ca = await Promise.all(host.ca.map((p) => readPem(p, 'CA certificate', file)));
  if (host.client.length > 0) {
    tls.cert = [];
    tls.key = [];
    for (const [cert, key] of host.client) {
      const certPem = await readPem(cert, 'client certificate', file);
      tls.cert.push(certPem);
      tls.key.push(key ? await readPem(key, 'client key', file) : certPem);
    }
  }
  if (host.skipVerify !== undefined) tls.rejectUnauthorized = !host.skipVerify;
  const headers = Object.fromEntries(Object.entries(host.header).map(([name, values]) => [name.toLowerCase(), values.join(', ')]));
  const hasTls = Object.keys(tls).length > 0;
  if (!host.host && !hasTls && Object.keys(headers).length === 0) return undefined; // the registry as it is
  return {
    url: host.host ? `${host.scheme}://${host.host}` : '',
    apiPath: host.path,
    headers,
    ...(isProxyFor(registry, host.host) ? { query: { ns: registry } } : {}),
    ...(hasTls ? { tls } : {}),
  };
}

export interface HostSetOptions {
  /** Response headers / body pauses of a mirror longer than this pass the read on; ms. */
  mirrorStallMs: number;
}

/** One RegistrySource per configured host, mirrors first, the server last. */
export async function buildHosts(
  ref: RegistryReference,
  loaded: LoadedHosts,
  options: RegistryClientOptions,
  hostOptions: HostSetOptions,
): Promise<RegistryHost[]> {
  const file = existsSync(`${loaded.dir}/hosts.toml`) ? `${loaded.dir}/hosts.toml` : loaded.dir;
  const hosts: RegistryHost[] = [];
  for (const config of loaded.hosts) {
    const endpoint = await endpointFor(ref.registry, config, file);
    if (endpoint && !endpoint.url) {
      // The default host with TLS settings or headers only: keep its usual URL.
      endpoint.url = `${isLoopbackRegistry(ref.registry) ? 'http' : 'https'}://${registryEndpointHost(ref.registry)}`;
    }
    const isMirror = !config.isServer;
    const stall = hostOptions.mirrorStallMs;
    const dial = config.dialTimeoutMs;
    const clientOptions: RegistryClientOptions = {
      ...options,
      ...(endpoint ? { endpoint } : {}),
      ...(dial !== undefined ? { timeouts: { ...options.timeouts, connectMs: dial } } : {}),
      // A mirror gets no retries and short timeouts: the next host is the retry.
      ...(isMirror
        ? {
            retries: 0,
            timeouts: {
              connectMs: Math.min(dial ?? options.timeouts?.connectMs ?? 10_000, stall),
              headersMs: Math.min(options.timeouts?.headersMs ?? 30_000, stall),
              bodyMs: Math.min(options.timeouts?.bodyMs ?? 30_000, stall),
            },
          }
        : {}),
    };
    hosts.push(new RegistryHost(config, new RegistrySource(ref, clientOptions), isMirror));
  }
  return hosts;
}
