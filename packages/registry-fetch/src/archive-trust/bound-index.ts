// The binding `clip publish` writes: an OCI image index at the target tag that lists the image
// (its platform manifests, as before) and the archive's artifact manifest. Deploying the tag,
// or better the index's digest, therefore names one archive digest; a writer of referrers
// cannot change what an index digest lists. The artifact entry has platform unknown/unknown
// (as BuildKit's attestation manifests), so platform-matching clients (containerd, skopeo,
// docker) never pick it as an image, and an annotation names the manifest it indexes. The
// entry carries no `artifactType`: skopeo 1.9 (containers/image 5.23) drops that field when it
// re-serialises an index, so `skopeo copy --all --preserve-digests` would refuse the copy.
import type { Digest } from '@clip/shared';
import type { Descriptor, Platform, RawManifest } from '../image-source.js';
import { MEDIA_TYPE, isIndexMediaType } from '../media-types.js';

/** Annotation on the artifact's index entry: the image manifest digest the archive indexes. */
export const BOUND_MANIFEST_ANNOTATION = 'dev.clip.archive.manifest';
const UNKNOWN_PLATFORM: Platform = { os: 'unknown', architecture: 'unknown' };

export interface BindIndexInput {
  /** What the tag pointed at after the image push: the image manifest or its index. */
  top: RawManifest;
  /** The platform manifest the archive indexes. */
  manifest: { digest: Digest; mediaType: string; size: number; platform?: Platform };
  /** The archive's artifact manifest. */
  artifact: Descriptor;
}

type Json = Record<string, unknown>;

function descriptorJson(descriptor: Descriptor): Json {
  return {
    mediaType: descriptor.mediaType,
    digest: descriptor.digest,
    size: descriptor.size,
    ...(descriptor.platform ? { platform: descriptor.platform } : {}),
    ...(descriptor.artifactType ? { artifactType: descriptor.artifactType } : {}),
    ...(descriptor.annotations ? { annotations: descriptor.annotations } : {}),
  };
}

/** The manifest an index entry binds an archive to, if it is such an entry. */
function boundManifestOf(entry: unknown): unknown {
  if (typeof entry !== 'object' || entry === null) return undefined;
  const annotations = (entry as Json)['annotations'];
  return typeof annotations === 'object' && annotations !== null ? (annotations as Json)[BOUND_MANIFEST_ANNOTATION] : undefined;
}

/**
 * The index to put at the tag. An existing index keeps its entries and annotations (an older
 * archive entry for the same manifest is replaced); a single manifest becomes a one-platform index.
 */
export function bindIndexBytes(input: BindIndexInput): Uint8Array {
  let base: Json = {};
  let entries: unknown[];
  if (isIndexMediaType(input.top.mediaType)) {
    base = JSON.parse(Buffer.from(input.top.bytes).toString('utf8')) as Json;
    const manifests = Array.isArray(base['manifests']) ? base['manifests'] : [];
    entries = manifests.filter((entry) => boundManifestOf(entry) !== input.manifest.digest);
  } else {
    entries = [
      descriptorJson({
        mediaType: input.manifest.mediaType,
        digest: input.manifest.digest,
        size: input.manifest.size,
        ...(input.manifest.platform ? { platform: input.manifest.platform } : {}),
      }),
    ];
  }
  entries.push(
    descriptorJson({
      mediaType: input.artifact.mediaType,
      digest: input.artifact.digest,
      size: input.artifact.size,
      platform: UNKNOWN_PLATFORM,
      annotations: { [BOUND_MANIFEST_ANNOTATION]: input.manifest.digest },
    }),
  );
  const index: Json = { schemaVersion: 2, mediaType: MEDIA_TYPE.ociIndex, manifests: entries };
  if (base['annotations'] !== undefined) index['annotations'] = base['annotations'];
  return new TextEncoder().encode(JSON.stringify(index));
}

/**
 * Artifact manifests the deployed index binds to `manifestDigest` (index order). The artifact
 * manifest itself is checked when fetched (artifactType, subject, one archive layer).
 */
export function boundArtifacts(indexEntries: readonly Descriptor[], manifestDigest: Digest): Descriptor[] {
  return indexEntries.filter((entry) => entry.annotations?.[BOUND_MANIFEST_ANNOTATION] === manifestDigest);
}
