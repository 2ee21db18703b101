// One entry point for every reference kind: picks the ImageSource implementation.
import { formatImageReference, parseImageReference, type ImageReference } from '@clip/shared';
import type { ImageSource, Platform } from './image-source.js';
import { LayoutSource, OciArchiveSource } from './layout-source.js';
import type { RegistryClientOptions } from './registry-client.js';
import { RegistrySource } from './registry-source.js';

/** The registry client's options (credentials, TLS, timeouts, retries...) plus a default platform. */
export interface OpenImageSourceOptions extends RegistryClientOptions {
  /**
   * Platform wanted from an image index. Sources pick it on resolve(); kept here so callers
   * can pass one options object around. resolve({ platform }) overrides it.
   */
  platform?: Platform;
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
