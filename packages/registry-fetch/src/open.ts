// One entry point for every reference kind: picks the ImageSource implementation.
import { formatImageReference, parseImageReference, type ImageReference } from '@clip/shared/reference';
import type { Logger } from '@clip/shared/log';
import type { Credentials } from './credentials.js';
import type { ImageSource, Platform } from './image-source.js';
import { LayoutSource, OciArchiveSource } from './layout-source.js';
import type { TimeoutOptions } from './registry-client.js';
import { RegistrySource } from './registry-source.js';
import type { RetryOptions } from './retry.js';

export interface OpenImageSourceOptions {
  /**
   * Platform wanted from an image index. Sources pick it on resolve(); kept here so callers
   * can pass one options object around. resolve({ platform }) overrides it.
   */
  platform?: Platform;
  credentials?: Credentials;
  /** Non-loopback registries: skip TLS verification, fall back to plain HTTP. */
  insecure?: boolean;
  logger?: Logger;
  timeouts?: TimeoutOptions;
  retries?: number | RetryOptions;
  /** Concurrent connections per registry host; default 8. */
  connectionsPerHost?: number;
  env?: NodeJS.ProcessEnv;
  dockerConfigDir?: string;
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
      const { platform, ...clientOptions } = options;
      return withDefaultPlatform(new RegistrySource(ref, clientOptions), platform);
    }
  }
}
