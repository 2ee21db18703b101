// The emulated link between workers and the registry: a namespace holding the registry
// (worker A pushes to it directly) and the latency proxy in front of it (worker B's only way
// in), with the bandwidth cap applied to the proxy's port.
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { ProxyStats } from './delay-proxy.js';
import { createNamespace, type Namespace } from './namespace.js';
import type { LinkProfile } from './profiles.js';
import { startProxyProcess, type ProxyProcess } from './proxy-process.js';
import { startNamespacedRegistry, type NamespacedRegistry } from './registry.js';
import { applyShaping, clearShaping } from './shaping.js';

const REGISTRY_PORT = 5000;
const PROXY_PORT = 5001;

export interface Link {
  netns: string;
  /** Registry address for the build worker (unshaped). */
  registryHost: string;
  /** Registry address for runtime workers: through the proxy and the shaped link. */
  clientHost: string;
  profile: LinkProfile;
  tcCommands: string[];
  setProfile(profile: LinkProfile): Promise<void>;
  counters(): Promise<ProxyStats>;
  /** Returns the counters so far and zeroes them. */
  resetCounters(): Promise<ProxyStats>;
  close(): Promise<void>;
}

export async function openLink(workDir: string, profile: LinkProfile): Promise<Link> {
  const namespace: Namespace = await createNamespace();
  let registry: NamespacedRegistry | undefined;
  let proxy: ProxyProcess | undefined;
  try {
    await mkdir(workDir, { recursive: true });
    registry = await startNamespacedRegistry(namespace.name, join(workDir, 'registry'), REGISTRY_PORT);
    const link: Link = {
      netns: namespace.name,
      registryHost: `127.0.0.1:${REGISTRY_PORT}`,
      clientHost: `127.0.0.1:${PROXY_PORT}`,
      profile,
      tcCommands: [],
      async setProfile(next) {
        await proxy?.stop();
        proxy = undefined;
        link.tcCommands = await applyShaping(namespace.name, next, PROXY_PORT);
        proxy = await startProxyProcess(namespace.name, PROXY_PORT, REGISTRY_PORT, next.rttMs / 2);
        link.profile = next;
      },
      counters: () => proxy!.stats(),
      resetCounters: () => proxy!.reset(),
      async close() {
        await proxy?.stop();
        await clearShaping(namespace.name);
        await registry?.stop();
        await namespace.destroy();
      },
    };
    await link.setProfile(profile);
    return link;
  } catch (error) {
    await proxy?.stop();
    await registry?.stop();
    await namespace.destroy();
    throw error;
  }
}
