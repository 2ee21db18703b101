// The build-time access profile: a second layer of the archive artifact (media type
// PROFILE_LAYER_MEDIA_TYPE) holding the prefetch-list text that `clip publish --profile` /
// `clip profile` recorded (files in first-read order, byte ranges per file). Workers fetch it
// with the archive and prefetch what it lists. It is bound like the archive: by the artifact
// manifest (which the bound index or a pin names by digest) and, for signed artifacts, by a
// second signature over (profile, archive, manifest, storage).
import { sign, type KeyObject } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { ClipError, type Digest, isClipError, parsePrefetchList, sha256Digest, writeFileAtomically } from '@clip/shared';
import type { Descriptor } from '../image-source.js';
import type { ArtifactManifest } from '../referrers.js';
import type { RegistrySource } from '../registry-source.js';
import { ArchiveUntrustedError } from '../archive-trust/errors.js';
import { signerOf, storageName } from '../archive-trust/signature.js';
import { readAtMost } from '../archive-trust/fetch-archive.js';
import type { RepositoryName } from '../archive-trust/verify-archive-binding.js';

export const PROFILE_LAYER_MEDIA_TYPE = 'application/vnd.clip.profile.v1';
/** A profile comes from the registry: never accept (or publish) one larger than this. */
export const MAX_PROFILE_BYTES = 16 * 1024 * 1024;
export const PROFILE_SIGNATURE_ANNOTATION = 'dev.clip.profile.signature';
const PROFILE_PAYLOAD_TYPE = 'dev.clip.profile-binding.v1';

/** A profile as a worker keeps it: verified bytes next to the cached archive. */
export interface LoadedProfile {
  digest: Digest;
  bytes: number;
  /** Files it lists (lines that are not comments). */
  files: number;
  /** `<archive>.profile`: where `clip mount <archive>` finds it. */
  path: string;
}

/** Where the profile of an archive file lives: the archive path with `.profile` for `.clip`. */
export function profileSidecarPath(archivePath: string): string {
  return `${archivePath.replace(/\.clip$/, '')}.profile`;
}

/** Lines of a prefetch-list text that name a file. */
export function countProfileFiles(bytes: Uint8Array): number {
  return parsePrefetchList(Buffer.from(bytes).toString('utf8')).length;
}

/** Refuses a profile over MAX_PROFILE_BYTES (at publish: a runaway workload; at pull: a hostile registry). */
export function checkProfileSize(bytes: number, what: string): void {
  if (bytes > MAX_PROFILE_BYTES)
    throw new ArchiveUntrustedError(`${what} is ${bytes} bytes, more than the ${MAX_PROFILE_BYTES} bytes a profile may have`);
}

/** The artifact's profile layer, if it has one (at most one). */
export function profileLayer(manifest: ArtifactManifest, what: string): Descriptor | undefined {
  const layers = manifest.layers.filter((layer) => layer.mediaType === PROFILE_LAYER_MEDIA_TYPE);
  if (layers.length > 1) throw new ArchiveUntrustedError(`${what} has ${layers.length} profile layers, expected at most 1`);
  const layer = layers[0];
  if (layer) checkProfileSize(layer.size, `${what}: profile blob ${layer.digest}`);
  return layer;
}

/** Downloads a profile blob (at most its declared size) and checks its digest. */
export async function downloadProfileBlob(source: RegistrySource, layer: Descriptor, what: string): Promise<Buffer> {
  const label = `profile blob ${layer.digest} of ${what} in ${source.reference}`;
  let bytes: Buffer;
  try {
    bytes = await readAtMost(await source.openBlob(layer.digest), layer.size, label);
  } catch (error) {
    // The blob stream checks the digest itself: say which blob it was and what that means.
    if (isClipError(error) && error.code === 'CLIP_E_DIGEST_MISMATCH') throw refusedProfile(label, error.message);
    throw error;
  }
  const actual = sha256Digest(bytes);
  if (actual !== layer.digest) throw refusedProfile(label, `expected ${layer.digest}, got ${actual}`);
  return bytes;
}

/** A profile blob whose bytes are not the ones the (bound) artifact names. */
export class ProfileDigestError extends ClipError {
  constructor(label: string, detail: string) {
    super('CLIP_E_DIGEST_MISMATCH', `${label} does not match its digest (changed after publishing?); refused: ${detail}`);
  }
}

const refusedProfile = (label: string, detail: string) => new ProfileDigestError(label, detail);

export interface ProfileBinding {
  profileDigest: Digest;
  archiveDigest: Digest;
  manifestDigest: Digest;
  storage: RepositoryName;
}

function profilePayload(binding: ProfileBinding): Buffer {
  return Buffer.from(
    JSON.stringify({
      type: PROFILE_PAYLOAD_TYPE,
      profile: binding.profileDigest,
      archive: binding.archiveDigest,
      manifest: binding.manifestDigest,
      storage: storageName(binding.storage),
    }),
  );
}

/** The annotation that signs a profile together with its archive (added next to the archive signature). */
export function signProfile(binding: ProfileBinding, key: KeyObject): Record<string, string> {
  return { [PROFILE_SIGNATURE_ANNOTATION]: sign(null, profilePayload(binding), key).toString('base64') };
}

/** Whether one of `keys` signed this profile for this archive; the signer's fingerprint or a reason. */
export function checkProfileSignature(
  annotations: Record<string, string> | undefined,
  binding: ProfileBinding,
  keys: readonly KeyObject[],
): { ok: true; key: string } | { ok: false; reason: string } {
  const signature = annotations?.[PROFILE_SIGNATURE_ANNOTATION];
  if (typeof signature !== 'string') return { ok: false, reason: 'its profile layer is not signed' };
  const key = signerOf(profilePayload(binding), signature, keys);
  if (key) return { ok: true, key };
  return { ok: false, reason: 'the profile signature does not verify with the --verify-key key(s)' };
}

/** Writes (or, with no profile, removes) the sidecar of a cached archive. */
export async function storeProfileSidecar(archivePath: string, bytes: Uint8Array | undefined): Promise<string | undefined> {
  const path = profileSidecarPath(archivePath);
  if (!bytes) {
    await rm(path, { force: true });
    return undefined;
  }
  await writeFileAtomically(path, bytes);
  return path;
}
