// The hosts a registry reference is read from, one plain RegistrySource each, in containerd's
// order (mirrors, then the server), for callers that need a whole RegistrySource per host
// (referrers lookups, archive downloads) rather than MirroredSource's per-read fallback.
import type { RegistryReference } from '@clip/shared';
import type { RegistryClientOptions } from '../registry-client.js';
import { RegistrySource } from '../registry-source.js';
import { loadHostsConfig } from './hosts-config.js';
import { buildHosts } from './host-set.js';
import { DEFAULT_MIRROR_STALL_MS } from './mirrored-source.js';

/** Sources to try in order; a single plain source when `hostsDir` has nothing for this registry. */
export async function openHostSources(
  ref: RegistryReference,
  options: RegistryClientOptions & { hostsDir?: string },
): Promise<RegistrySource[]> {
  const { hostsDir, ...clientOptions } = options;
  const loaded = hostsDir ? await loadHostsConfig(hostsDir, ref.registry) : undefined;
  if (!loaded) return [new RegistrySource(ref, clientOptions)];
  const hosts = await buildHosts(ref, loaded, clientOptions, { mirrorStallMs: DEFAULT_MIRROR_STALL_MS });
  // A tag is resolved only on hosts trusted with `resolve`; a digest on any `pull` host.
  const usable = hosts.filter((h) => h.has('pull') && (ref.digest !== undefined || h.has('resolve')));
  for (const host of hosts) if (!usable.includes(host)) await host.source.close();
  return usable.map((h) => h.source);
}
