// The trust checks of an artifact's access profile (archive-artifact/profile.ts), on the
// worker side of load.ts: the profile layer named by an artifact that passed the archive
// checks is served only with the digest the artifact names (the bound index or the pin fixed
// that artifact), and, when signatures are required, only if its own signature verifies.
import { readFile } from 'node:fs/promises';
import type { KeyObject } from 'node:crypto';
import { type Digest, sha256Digest } from '@clip/shared';
import type { RegistrySource } from '../registry-source.js';
import { checkProfileSignature, downloadProfileBlob, profileLayer, profileSidecarPath } from '../archive-artifact/profile.js';
import { ArchiveUnboundError } from './errors.js';
import type { ArchiveArtifact } from './fetch-archive.js';
import type { RepositoryName } from './verify-archive-binding.js';

export interface AcceptedProfile {
  bytes: Buffer;
  digest: Digest;
}

/** The profile layer of `artifact`, checked against the signature keys (before any download). */
export function profileOfArtifact(
  artifact: ArchiveArtifact,
  binding: { archiveDigest: Digest; manifestDigest: Digest; storages: readonly RepositoryName[] },
  verifyKeys: readonly KeyObject[] | undefined,
  what: string,
) {
  const layer = profileLayer(artifact.manifest, what);
  if (!layer || !verifyKeys?.length) return layer;
  let reason = '';
  for (const storage of binding.storages) {
    const verdict = checkProfileSignature(
      artifact.manifest.annotations,
      { profileDigest: layer.digest, archiveDigest: binding.archiveDigest, manifestDigest: binding.manifestDigest, storage },
      verifyKeys,
    );
    if (verdict.ok) return layer;
    reason = verdict.reason;
  }
  throw new ArchiveUnboundError(`${what}: ${reason} (profile ${layer.digest})`);
}

/** The profile bytes: the archive's sidecar when it still hashes to the digest, else downloaded. */
export async function fetchProfile(
  source: RegistrySource,
  layer: ArchiveArtifact['blob'],
  archivePath: string,
  what: string,
): Promise<AcceptedProfile> {
  const cached = await readFile(profileSidecarPath(archivePath)).catch(() => undefined);
  if (cached && cached.length === layer.size && sha256Digest(cached) === layer.digest) return { bytes: cached, digest: layer.digest };
  return { bytes: await downloadProfileBlob(source, layer, what), digest: layer.digest };
}
