// The access profile's part of publishing: record it on the fresh archive (through the callback
// the CLI wires to @clip/runtime's recordProfile), bound its size, and turn it into the
// artifact's second layer, signed next to the archive when a key is given.
import type { KeyObject } from 'node:crypto';
import { type Digest, type Logger, type RegistryReference, sha256Digest } from '@clip/shared';
import { checkProfileSize, countProfileFiles, PROFILE_LAYER_MEDIA_TYPE, signProfile } from '@clip/registry-fetch';

export interface PublishedProfile {
  digest: Digest;
  bytes: number;
  /** Files the profile lists, in first-read order. */
  files: number;
}

/** Runs the recorder on `archivePath`; refuses an empty or oversized profile. */
export async function recordPublishProfile(
  record: (archivePath: string) => Promise<Uint8Array>,
  archivePath: string,
  logger: Logger,
): Promise<Uint8Array> {
  const bytes = await record(archivePath);
  checkProfileSize(bytes.length, 'the recorded profile');
  const files = countProfileFiles(bytes);
  if (files === 0) logger.warn('the profile command read no file of the image; publishing an empty profile');
  logger.info('profile recorded', { files, bytes: bytes.length, digest: sha256Digest(bytes) });
  return bytes;
}

/** The profile layer and, with a key, the annotation that signs it with the archive. */
export function profileArtifactParts(
  profile: Uint8Array,
  signKey: KeyObject | undefined,
  archive: Uint8Array,
  manifestDigest: Digest,
  target: RegistryReference,
) {
  const digest = sha256Digest(profile);
  const annotations = signKey
    ? signProfile(
        {
          profileDigest: digest,
          archiveDigest: sha256Digest(archive),
          manifestDigest,
          storage: { registry: target.registry, repository: target.repository },
        },
        signKey,
      )
    : {};
  return {
    blob: { bytes: profile, mediaType: PROFILE_LAYER_MEDIA_TYPE, annotations: { 'org.opencontainers.image.title': 'profile.txt' } },
    annotations,
    summary: { digest, bytes: profile.length, files: countProfileFiles(profile) } satisfies PublishedProfile,
  };
}
