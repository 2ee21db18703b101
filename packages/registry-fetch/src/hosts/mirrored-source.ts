// An ImageSource over a registry's containerd host list (mirrors, then the server), with
// containerd's fallback order: tags are resolved only on hosts with `resolve` (and `pull`),
// everything by digest on hosts with `pull`, each host tried in order and the next one used
// when it fails. Byte ranges go through mirrorRange(): a mirror is used only while it answers
// ranges promptly; the last host is read with the usual client (retries, 200 handling).
import type { Readable } from 'node:stream';
import {
  type Digest,
  RegistryError,
  silentLogger,
  type Logger,
  formatImageReference,
  raceAbort,
  type RegistryReference,
} from '@clip/shared';
import type { Descriptor, ImageSource, RangeOptions, RawManifest, ResolvedImage, ResolveOptions, SourceStats } from '../image-source.js';
import { checkRange } from '../range.js';
import type { RegistryClientOptions } from '../registry-client.js';
import { resolveImage } from '../resolve.js';
import { StatsCounter } from '../stats.js';
import type { LoadedHosts } from './hosts-config.js';
import { buildHosts, type HostStats, type RegistryHost } from './host-set.js';
import { ColdFiller, MirrorPassError, mirrorRange, type ColdFillOptions } from './mirror-range.js';
import { ThroughputEstimate } from './throughput.js';
import { openBlobAcrossHosts } from './whole-blob.js';

export interface MirrorOptions {
  /** A mirror that sends no response headers, or pauses its body, this long passes the read on; ms, default 2000. */
  stallMs?: number;
  /** What happens to a cold mirror's whole-blob 200: default `drop` (see docs/fleet.md). */
  coldFill?: Partial<ColdFillOptions>;
}

export const DEFAULT_MIRROR_STALL_MS = 2000;

export class MirroredSource implements ImageSource {
  readonly kind = 'registry' as const;
  readonly reference: string;
  private readonly counter = new StatsCounter(true);
  private readonly logger: Logger;
  private readonly filler: ColdFiller;
  private readonly stallMs: number;
  /** The origin link's rate as this worker's direct reads see it: when a cold cache can have filled. */
  private readonly originRate = new ThroughputEstimate();

  private constructor(
    readonly ref: RegistryReference,
    readonly hosts: RegistryHost[],
    readonly configDir: string,
    options: RegistryClientOptions,
    mirror: MirrorOptions,
  ) {
    this.reference = formatImageReference(ref);
    this.logger = (options.logger ?? silentLogger).child({ registry: ref.registry, repository: ref.repository });
    this.stallMs = mirror.stallMs ?? DEFAULT_MIRROR_STALL_MS;
    this.filler = new ColdFiller({ mode: 'drop', concurrency: 2, maxBytes: 1024 * 1024 * 1024, ...mirror.coldFill }, this.logger);
  }

  static async open(
    ref: RegistryReference,
    loaded: LoadedHosts,
    options: RegistryClientOptions = {},
    mirror: MirrorOptions = {},
  ): Promise<MirroredSource> {
    const hosts = await buildHosts(ref, loaded, options, { mirrorStallMs: mirror.stallMs ?? DEFAULT_MIRROR_STALL_MS });
    const source = new MirroredSource(ref, hosts, loaded.dir, options, mirror);
    source.logger.info('registry hosts from hosts.toml', {
      dir: loaded.dir,
      hosts: hosts.map((h) => `${h.stats.role}:${h.stats.host}`).join(','),
    });
    return source;
  }

  private pullHosts(): RegistryHost[] {
    return this.hosts.filter((h) => h.has('pull'));
  }

  /** Tries `fn` on each host in order; the last host's error is the one thrown. */
  private async firstOf<T>(hosts: RegistryHost[], what: string, fn: (host: RegistryHost) => Promise<T>): Promise<T> {
    if (hosts.length === 0) throw new RegistryError(`registry ${this.ref.registry}: no host in ${this.configDir} may be used to ${what}`);
    let lastError: unknown;
    for (const [i, host] of hosts.entries()) {
      try {
        return await fn(host);
      } catch (error) {
        lastError = error;
        if (i < hosts.length - 1) {
          host.stats.fallbacks++;
          this.logger.debug('registry host failed; trying the next', { host: host.stats.host, what, error: (error as Error).message });
        }
      }
    }
    throw lastError;
  }

  topManifest(): Promise<RawManifest> {
    const tagOrDigest = this.ref.digest;
    if (tagOrDigest) return this.fetchManifest(tagOrDigest as Digest);
    // Resolving a tag trusts the host with the tag → digest mapping: only `resolve` hosts.
    return this.firstOf(
      this.hosts.filter((h) => h.has('pull', 'resolve')),
      'resolve tags',
      (h) => h.source.topManifest(),
    );
  }

  fetchManifest(digest: Digest): Promise<RawManifest> {
    return this.firstOf(this.pullHosts(), 'pull', (h) => h.source.fetchManifest(digest));
  }

  async resolve(options?: ResolveOptions): Promise<ResolvedImage> {
    const top = await this.topManifest();
    return resolveImage(
      this.reference,
      top,
      {
        fetchManifest: (digest) => this.fetchManifest(digest),
        readSmallBlob: (descriptor: Descriptor) => this.readSmallBlob(descriptor),
      },
      options,
    );
  }

  private async readSmallBlob(descriptor: Descriptor): Promise<Buffer> {
    const chunks: Buffer[] = [];
    for await (const chunk of await this.openBlob(descriptor.digest)) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks);
  }

  /** Whole blobs (digest-verified) from the first host that starts sending one; a break mid-body resumes on the next (whole-blob.ts). */
  openBlob(digest: Digest, options?: RangeOptions): Promise<Readable> {
    const hosts = this.pullHosts();
    if (hosts.length === 0) throw new RegistryError(`registry ${this.ref.registry}: no host in ${this.configDir} may be used to pull`);
    return openBlobAcrossHosts(hosts, digest, {
      reference: this.reference,
      logger: this.logger,
      onBytes: (bytes) => this.counter.received(bytes),
      ...(options?.signal ? { signal: options.signal } : {}),
    });
  }

  async hasBlob(digest: Digest): Promise<boolean> {
    const hosts = this.pullHosts();
    for (const [i, host] of hosts.entries()) {
      try {
        if (await host.source.hasBlob(digest)) return true;
      } catch (error) {
        if (i === hosts.length - 1) throw error;
      }
    }
    return false;
  }

  async readBlobRange(digest: Digest, start: number, end: number, options?: RangeOptions): Promise<Buffer> {
    checkRange(`blob ${digest} of ${this.reference}`, start, end);
    if (start === end) return Buffer.alloc(0);
    const signal = options?.signal;
    const hosts = this.pullHosts();
    if (hosts.length === 0) throw new RegistryError(`registry ${this.ref.registry}: no host in ${this.configDir} may be used to pull`);
    const fillTime = (bytes: number) => this.originRate.timeFor(bytes);
    for (const [i, host] of hosts.entries()) {
      if (i === hosts.length - 1) return this.lastHostRange(host, digest, start, end, options);
      if (host.skipReason(digest, Date.now(), fillTime)) {
        host.stats.skipped++;
        continue;
      }
      // While another read's first request for this blob waits for the mirror's answer, wait
      // for that answer (fast when warm, bounded by the stall timer) instead of piling on.
      const state = host.digest(digest);
      if (!state.warm && state.probe) {
        await raceAbort(state.probe, signal);
        if (host.skipReason(digest, Date.now(), fillTime)) {
          host.stats.skipped++;
          continue;
        }
      }
      let release: (() => void) | undefined;
      if (!state.warm && !state.probe) {
        state.probe = new Promise<void>((resolve) => (release = resolve));
      }
      const onHeaders = () => {
        if (!release) return;
        state.probe = undefined;
        release();
        release = undefined;
      };
      try {
        const bytes = await mirrorRange(host, {
          digest,
          start,
          end,
          stallMs: this.stallMs,
          filler: this.filler,
          onHeaders,
          ...(signal ? { signal } : {}),
        });
        this.counter.received(bytes.length);
        return bytes;
      } catch (error) {
        if (signal?.aborted || !(error instanceof MirrorPassError)) throw error;
        host.stats.fallbacks++;
        this.logger.debug('mirror passed a range read on', {
          host: host.stats.host,
          digest,
          start,
          end,
          reason: error.reason,
          error: error.message,
        });
      }
    }
    throw new RegistryError(`registry ${this.ref.registry}: no host served ${digest}`);
  }

  private async lastHostRange(host: RegistryHost, digest: Digest, start: number, end: number, options?: RangeOptions): Promise<Buffer> {
    host.stats.rangeRequests++;
    this.originRate.begin();
    let received = 0;
    try {
      const bytes = await host.source.readBlobRange(digest, start, end, options);
      received = bytes.length;
      host.stats.rangesHonoured++;
      host.stats.bytes += bytes.length;
      return bytes;
    } catch (error) {
      host.stats.errors++;
      throw error;
    } finally {
      this.originRate.end(received);
    }
  }

  /** What each host did: ranges honoured, whole-body answers, bytes, fallbacks, fills. */
  hostStats(): HostStats[] {
    return this.hosts.map((h) => ({ ...h.stats }));
  }

  stats(): SourceStats {
    const total = this.counter.snapshot();
    for (const host of this.hosts) {
      const s = host.source.stats();
      total.requests += s.requests;
      total.rangeRequests += s.rangeRequests;
      total.bytesReceived += s.bytesReceived;
      total.networkBytesReceived += s.networkBytesReceived;
    }
    return total;
  }

  async close(): Promise<void> {
    this.filler.close();
    await Promise.all(this.hosts.map((h) => h.source.close()));
  }
}
