// One entry point for every reference kind: picks the ImageSource implementation.
import { formatImageReference, parseImageReference, type ImageReference } from '@clip/shared';
import type { ImageSource, Platform } from './image-source.js';
import { LayoutSource, OciArchiveSource } from './layout-source.js';
import type { RegistryClientOptions } from './registry-client.js';
import { RegistrySource } from './registry-source.js';
import { loadHostsConfig } from './hosts/hosts-config.js';
import { MirroredSource, type MirrorOptions } from './hosts/mirrored-source.js';

/** The registry client's options (credentials, TLS, timeouts, retries...) plus a default platform. */
export interface OpenImageSourceOptions extends RegistryClientOptions {
  /**
   * Platform wanted from an image index. Sources pick it on resolve(); kept here so callers
   * can pass one options object around. resolve({ platform }) overrides it.
   */
  platform?: Platform;
  /**
   * containerd hosts directory (`certs.d` layout with hosts.toml files): registries with a
   * configuration there are read through their mirrors first. Undefined: the registry only.
   * CLIs take it from resolveHostsDir(--hosts-dir) (hosts/hosts-dir.ts).
   */
  hostsDir?: string;
  /** How mirrors are used (stall bound, cold-cache fill); see hosts/mirrored-source.ts. */
  mirror?: MirrorOptions;
}

/** An ImageSource with the default platform baked into resolve(). */
function withDefaultPlatform(source: ImageSource, platform: Platform | undefined): ImageSource {
  if (!platform) return source;
  const resolve = source.resolve.bind(source);
  source.resolve = (options) => resolve({ platform, ...options });
  return source;
}

export async function openImageSource(reference: string | ImageReference, options: OpenImageSourceOptions = {}): Promise<ImageSource> {
  const ref = typeof reference === 'string' ? parseImageReference(reference) : reference;
  options.logger?.debug('opening image source', { kind: ref.kind, reference: formatImageReference(ref) });
  switch (ref.kind) {
    case 'oci-layout':
      return withDefaultPlatform(new LayoutSource(ref), options.platform);
    case 'oci-archive':
      return withDefaultPlatform(new OciArchiveSource(ref), options.platform);
    case 'registry': {
      const { platform, hostsDir, mirror, ...clientOptions } = options;
      const hosts = hostsDir ? await loadHostsConfig(hostsDir, ref.registry) : undefined;
      if (hosts) return withDefaultPlatform(await MirroredSource.open(ref, hosts, clientOptions, mirror), platform);
      return withDefaultPlatform(new RegistrySource(ref, clientOptions), platform);
    }
  }
}
