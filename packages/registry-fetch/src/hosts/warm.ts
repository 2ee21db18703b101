// `clip warm`: fill the mirrors a registry's hosts.toml lists (pull-through caches) ahead of a
// rollout. Each mirror is asked for the image's manifests and the chosen blobs. By default a
// blob is triggered, not streamed: a 1-byte range request that the cold cache answers with a
// whole-blob 200 (dropped at once) makes distribution's proxy mode store the blob by its own
// upstream fetch; the same probe, repeated with backoff, sees 206 once it is stored. Streaming
// it instead would cost the origin two copies (distribution fetches once to store, once to
// stream). `readThrough` streams every blob whole, for caches that store only what they stream.
// Either way the cached blob is then read whole from the mirror (zone-local; a break mid-blob
// resumes by Range) and verified.
import {
  type Digest,
  forEachConcurrent,
  LayerNotFoundError,
  TimeoutError,
  UsageError,
  silentLogger,
  type Logger,
  parseRegistryReference,
  type RegistryReference,
} from '@clip/shared';
import type { Platform, ResolvedImage } from '../image-source.js';
import type { RegistryClientOptions } from '../registry-client.js';
import { loadHostsConfig } from './hosts-config.js';
import { buildHosts, type RegistryHost } from './host-set.js';
import { MirroredSource } from './mirrored-source.js';
import { abandon } from './mirror-range.js';
import { openBlobAcrossHosts } from './whole-blob.js';
import { repositoryScope } from '../auth.js';
import { sleep } from '../retry.js';

export interface WarmOptions extends RegistryClientOptions {
  hostsDir: string;
  platform?: Platform;
  /** Which blobs: every layer and the config (default), or these layer digests (and the config). */
  layers?: 'all' | Digest[];
  /** More blobs of the same repository to warm, e.g. an archive's windows blob (archive v2.3). */
  extraBlobs?: readonly Digest[];
  /** Blobs read at once per mirror; default 4. */
  concurrency?: number;
  /** A mirror pausing this long mid-blob (waiting on its upstream) fails that blob; ms, default 60000. */
  stallMs?: number;
  /** Stream each blob whole through the mirror instead of triggering its fill (read-through caches). */
  readThrough?: boolean;
  /** How long a triggered fill may take before the blob counts as failed; ms, default 600000. */
  fillTimeoutMs?: number;
  onBlob?: (event: { mirror: string; digest: Digest; bytes: number; error?: string }) => void;
}

export interface WarmedMirror {
  mirror: string;
  blobs: number;
  /** Blobs the mirror already had (answered a range with 206 at once). */
  alreadyCached: number;
  bytes: number;
  failed: Array<{ digest: Digest; error: string }>;
}

export interface WarmResult {
  reference: string;
  manifestDigest: Digest;
  /** Blobs asked of each mirror (config + chosen layers). */
  blobs: Digest[];
  mirrors: WarmedMirror[];
}

/** Resumes (by Range) after a mirror's stream breaks mid-blob, this many times. */
const READ_RESUMES = 3;

async function readWhole(host: RegistryHost, digest: Digest, logger: Logger): Promise<number> {
  let bytes = 0;
  // Verified against the digest at the end: a mirror handing out wrong bytes fails here.
  const stream = await openBlobAcrossHosts([host], digest, { reference: host.source.reference, logger, lastHostRetries: READ_RESUMES });
  for await (const chunk of stream) bytes += (chunk as Buffer).length;
  return bytes;
}

/** A 1-byte range of the blob: true when the mirror has it (206), false when cold (200, dropped). */
async function hasCached(host: RegistryHost, digest: Digest): Promise<boolean> {
  const client = host.source.client;
  const what = `GET blob ${digest} bytes 0-0 (warm probe)`;
  const response = await client.send({
    method: 'GET',
    path: client.apiPath('blobs', digest),
    headers: { range: 'bytes=0-0' },
    scopes: [repositoryScope(host.source.ref.repository, 'pull')],
    what,
    range: true,
    followRedirects: true,
  });
  if (response.status === 206) {
    await client.discard(response);
    return true;
  }
  if (response.status === 200) {
    abandon(response);
    return false;
  }
  if (response.status === 404) {
    await client.discard(response);
    throw new LayerNotFoundError(digest, `${host.stats.host} (mirror of ${host.source.reference})`);
  }
  throw await client.unexpected(response, what);
}

/**
 * Triggers the mirror's fill of a blob and waits until it serves ranges. Polls are sparse (2 s
 * doubling to 16 s): each request for a blob distribution is still fetching makes it open one
 * more upstream stream, which costs the origin what the sockets buffer before it is dropped.
 */
async function triggerFill(host: RegistryHost, digest: Digest, timeoutMs: number): Promise<boolean> {
  if (await hasCached(host, digest)) return true;
  const deadline = Date.now() + timeoutMs;
  for (let delay = 2000; Date.now() < deadline; delay = Math.min(delay * 2, 16_000)) {
    await sleep(Math.min(delay, Math.max(0, deadline - Date.now())));
    if (await hasCached(host, digest)) return false;
  }
  throw new TimeoutError(
    `mirror ${host.stats.host} did not store ${digest} within ${Math.round(timeoutMs / 1000)} s (a cache that stores only what it streams needs --read-through)`,
  );
}

export async function warmMirrors(reference: string | RegistryReference, options: WarmOptions): Promise<WarmResult> {
  const logger: Logger = options.logger ?? silentLogger;
  const ref = typeof reference === 'string' ? parseRegistryReference(reference) : reference;
  const loaded = await loadHostsConfig(options.hostsDir, ref.registry);
  const {
    hostsDir,
    platform,
    layers,
    extraBlobs,
    concurrency,
    stallMs,
    onBlob,
    readThrough: _readThrough,
    fillTimeoutMs: _fillTimeoutMs,
    ...clientOptions
  } = options;
  const mirrorStallMs = stallMs ?? 60_000;
  if (!loaded?.hosts.some((h) => !h.isServer && h.capabilities.includes('pull'))) {
    throw new UsageError(
      `no mirror with the pull capability is configured for ${ref.registry} in ${hostsDir} (hosts.toml [host."…"] entries)`,
    );
  }
  // The tag is resolved the way every read resolves it (resolve-capable hosts, in order)...
  const all = await MirroredSource.open(ref, loaded, clientOptions, { stallMs: mirrorStallMs });
  let image: ResolvedImage;
  let topDigest: Digest;
  try {
    topDigest = (await all.topManifest()).digest;
    image = await all.resolve(platform ? { platform } : {});
  } finally {
    await all.close();
  }
  // ...then every mirror is asked by digest, as a worker's reads will ask it.
  const pinned: RegistryReference = { ...ref, digest: topDigest };
  const hosts = await buildHosts(pinned, loaded, clientOptions, { mirrorStallMs });
  const mirrors = hosts.filter((h) => h.isMirror && h.has('pull'));
  const wanted =
    layers === undefined || layers === 'all'
      ? image.layers.map((l) => l.digest)
      : image.layers.map((l) => l.digest).filter((d) => layers.includes(d));
  const blobs = [image.configDescriptor.digest, ...wanted, ...(extraBlobs ?? [])];
  const result: WarmResult = { reference: all.reference, manifestDigest: image.manifestDigest, blobs, mirrors: [] };
  try {
    for (const host of mirrors) {
      const warmed: WarmedMirror = { mirror: host.stats.host, blobs: 0, alreadyCached: 0, bytes: 0, failed: [] };
      result.mirrors.push(warmed);
      try {
        // Manifests too: the proxy caches them, so workers resolving by digest stay off the origin.
        await host.source.resolve(platform ? { platform } : {});
      } catch (error) {
        warmed.failed.push({ digest: image.manifestDigest, error: (error as Error).message });
        logger.warn('mirror could not serve the manifest', { mirror: warmed.mirror, error: (error as Error).message });
        continue;
      }
      await forEachConcurrent(blobs, concurrency ?? 4, async (digest) => {
        try {
          if (!options.readThrough && (await triggerFill(host, digest, options.fillTimeoutMs ?? 600_000))) warmed.alreadyCached++;
          const bytes = await readWhole(host, digest, logger);
          warmed.blobs++;
          warmed.bytes += bytes;
          onBlob?.({ mirror: warmed.mirror, digest, bytes });
        } catch (error) {
          const message = (error as Error).message;
          warmed.failed.push({ digest, error: message });
          onBlob?.({ mirror: warmed.mirror, digest, bytes: 0, error: message });
        }
      });
      logger.info('mirror warmed', { mirror: warmed.mirror, blobs: warmed.blobs, bytes: warmed.bytes, failed: warmed.failed.length });
    }
  } finally {
    await Promise.all(hosts.map((h) => h.source.close()));
  }
  return result;
}
