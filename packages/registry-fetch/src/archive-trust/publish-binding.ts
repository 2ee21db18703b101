// Build-worker side of the binding: after the archive artifact is in the registry, put the
// bound index (image + archive artifact) at the target tag, so the reference the operator
// deploys names exactly one archive. See bound-index.ts and docs/security.md.
import type { KeyObject } from 'node:crypto';
import type { Digest, Logger, RegistryReference } from '@clip/shared';
import type { Descriptor, ImageSource, ResolvedImage } from '../image-source.js';
import { MEDIA_TYPE } from '../media-types.js';
import { pushManifest, type RegistryTarget } from '../push.js';
import { bindIndexBytes } from './bound-index.js';
import { keyFingerprint, signBinding } from './signature.js';

/** Annotations for the archive artifact manifest: the signature when a key is given. */
export function artifactSignature(
  key: KeyObject | undefined,
  binding: { archiveDigest: Digest; manifestDigest: Digest; target: RegistryReference },
): { annotations?: Record<string, string>; signedBy?: string } {
  if (!key) return {};
  const annotations = signBinding(
    {
      archiveDigest: binding.archiveDigest,
      manifestDigest: binding.manifestDigest,
      storage: { registry: binding.target.registry, repository: binding.target.repository },
    },
    key,
  );
  return { annotations, signedBy: keyFingerprint(key) };
}

/**
 * Pushes the bound index under the target's tag (or `latest`); returns its digest, or
 * undefined when the target names a digest (there is no tag to bind).
 */
export async function pushBoundIndex(
  destination: RegistryTarget,
  source: ImageSource,
  image: ResolvedImage,
  artifact: Descriptor,
  logger: Logger,
): Promise<Digest | undefined> {
  const ref = destination.ref;
  const tag = ref.tag ?? (ref.digest ? undefined : 'latest');
  if (!tag) {
    logger.warn('target names a digest: no tag to bind the archive to; workers need --archive-digest, --verify-key or --trust-referrers', {
      target: destination.reference,
    });
    return undefined;
  }
  const bytes = bindIndexBytes({
    top: await source.topManifest(),
    manifest: {
      digest: image.manifestDigest,
      mediaType: image.manifestMediaType,
      size: image.manifestBytes.length,
      ...(image.platform ? { platform: image.platform } : {}),
    },
    artifact,
  });
  const digest = await pushManifest(destination, { bytes, mediaType: MEDIA_TYPE.ociIndex }, tag);
  logger.info('archive bound to the tag', { target: destination.reference, index_digest: digest, artifact: artifact.digest });
  return digest;
}
