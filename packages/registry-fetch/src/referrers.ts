// OCI referrers (distribution spec 1.1): artifacts that point at an image manifest through
// their `subject`. Lookup tries the referrers API (`GET /v2/<repo>/referrers/<digest>`) and
// falls back to the referrers tag schema (`<alg>-<hex>` tagging an OCI index of referrers)
// on registries without it, such as distribution 2.8. Pushing updates the fallback tag
// unless the registry says it indexed the subject itself (`OCI-Subject` response header).
import type { Readable } from 'node:stream';
import { ImageFormatError } from './errors.js';
import { type Digest, LayerNotFoundError, sha256Digest } from '@clip/shared';
import { repositoryScope } from './auth.js';
import type { Descriptor } from './image-source.js';
import { MEDIA_TYPE } from './media-types.js';
import { pushBlob, type RegistryTarget } from './push.js';
import type { RegistryClient } from './registry-client.js';
import { parseDescriptor, parseIndexEntries } from './resolve.js';

/** The OCI empty descriptor: config of artifacts that have none (`{}`). */
export const EMPTY_CONFIG = {
  mediaType: 'application/vnd.oci.empty.v1+json',
  bytes: new TextEncoder().encode('{}'),
} as const;
export const EMPTY_CONFIG_DESCRIPTOR: Descriptor = {
  mediaType: EMPTY_CONFIG.mediaType,
  digest: sha256Digest(EMPTY_CONFIG.bytes),
  size: EMPTY_CONFIG.bytes.length,
};

/** The fallback tag of the referrers tag schema: `sha256-<hex>`. */
export function referrersTag(subject: Digest): string {
  return subject.replace(':', '-');
}

export interface ReferrerLookup {
  /** Descriptors of referrer manifests (with artifactType), registry order. */
  referrers: Descriptor[];
  via: 'api' | 'tag';
}

export interface ListReferrersOptions {
  /** Keep only referrers of this artifact type (also sent to the API as a filter). */
  artifactType?: string;
}

function pullScopes(client: RegistryClient): string[] {
  return [repositoryScope(client.repository, 'pull')];
}

function filterByType(referrers: Descriptor[], artifactType: string | undefined): Descriptor[] {
  return artifactType === undefined ? referrers : referrers.filter((descriptor) => descriptor.artifactType === artifactType);
}

/** The index the fallback tag points at, or undefined when the tag does not exist. */
async function readFallbackIndex(client: RegistryClient, subject: Digest): Promise<Descriptor[] | undefined> {
  const tag = referrersTag(subject);
  const what = `GET referrers tag ${tag}`;
  const response = await client.send({
    method: 'GET',
    path: client.apiPath('manifests', tag),
    headers: { accept: MEDIA_TYPE.ociIndex },
    scopes: pullScopes(client),
    what,
  });
  if (response.status === 404) {
    await client.discard(response);
    return undefined;
  }
  if (response.status !== 200) throw await client.unexpected(response, what);
  const bytes = await client.readBody(response, what, 4 * 1024 * 1024);
  return parseIndexEntries(bytes, `referrers index ${tag} of ${client.registry}/${client.repository}`);
}

/** Referrers of `subject`: from the referrers API when the registry has one, else from the fallback tag. */
export async function listReferrers(client: RegistryClient, subject: Digest, options: ListReferrersOptions = {}): Promise<ReferrerLookup> {
  const query: Record<string, string> = options.artifactType === undefined ? {} : { artifactType: options.artifactType };
  const what = `GET referrers of ${subject}`;
  const response = await client.send({
    method: 'GET',
    path: client.apiPath('referrers', subject, query),
    headers: { accept: MEDIA_TYPE.ociIndex },
    scopes: pullScopes(client),
    what,
  });
  if (response.status === 200) {
    const bytes = await client.readBody(response, what, 4 * 1024 * 1024);
    // The filter is optional for registries (OCI-Filters-Applied): apply it here anyway.
    return { referrers: filterByType(parseIndexEntries(bytes, `referrers of ${subject}`), options.artifactType), via: 'api' };
  }
  // 404 is what the spec prescribes; older registries answer 400/405 for an unknown route.
  if (response.status !== 404 && response.status !== 400 && response.status !== 405) throw await client.unexpected(response, what);
  await client.discard(response);
  const entries = (await readFallbackIndex(client, subject)) ?? [];
  return { referrers: filterByType(entries, options.artifactType), via: 'tag' };
}

/** An artifact manifest as far as referrer consumers need it. */
export interface ArtifactManifest {
  artifactType?: string;
  config: Descriptor;
  layers: Descriptor[];
  subject?: Descriptor;
  annotations?: Record<string, string>;
}

export function parseArtifactManifest(bytes: Uint8Array, what: string): ArtifactManifest {
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch (error) {
    throw new ImageFormatError(`${what} is not valid JSON`, { cause: error });
  }
  if (typeof value !== 'object' || value === null) throw new ImageFormatError(`${what} is not a JSON object`);
  const record = value as Record<string, unknown>;
  if (!Array.isArray(record['layers'])) throw new ImageFormatError(`${what} has no layers list`);
  const manifest: ArtifactManifest = {
    config: parseDescriptor(record['config'], `${what} config`),
    layers: record['layers'].map((layer, i) => parseDescriptor(layer, `${what} layers[${i}]`)),
  };
  if (typeof record['artifactType'] === 'string') manifest.artifactType = record['artifactType'];
  if (record['subject'] !== undefined) manifest.subject = parseDescriptor(record['subject'], `${what} subject`);
  if (typeof record['annotations'] === 'object' && record['annotations'] !== null)
    manifest.annotations = record['annotations'] as Record<string, string>;
  return manifest;
}

export interface ArtifactBlob {
  bytes: Uint8Array;
  mediaType: string;
  annotations?: Record<string, string>;
}

/** A layer whose blob is already in the repository (e.g. the windows blob when republishing). */
export interface ExistingArtifactBlob {
  existing: { digest: Digest; size: number };
  mediaType: string;
  annotations?: Record<string, string>;
}

export interface ReferrerArtifact {
  artifactType: string;
  /** The first layer: the artifact's content. */
  blob: ArtifactBlob;
  /** More layers after it (e.g. the archive's windows blob), pushed first like it; found by media type. */
  extraBlobs?: ReadonlyArray<ArtifactBlob | ExistingArtifactBlob>;
  /** The manifest this artifact refers to (must already be in the repository). */
  subject: Descriptor;
  annotations?: Record<string, string>;
}

export interface PushedReferrer {
  /** The artifact manifest (media type, digest, size, artifactType). */
  manifest: Descriptor;
  blob: Descriptor;
  /** Descriptors of `extraBlobs`, in order. */
  extraBlobs: Descriptor[];
  blobResult: 'exists' | 'mounted' | 'uploaded';
  /** Bytes of the artifact's blobs sent (0 when they were already there). */
  bytesUploaded: number;
  /** The fallback tag written, or undefined when the registry indexes referrers itself. */
  fallbackTag?: string;
}

/** Manifest JSON with fields in a fixed order, so the same artifact always has the same digest. */
function artifactManifestBytes(artifact: ReferrerArtifact, blob: Descriptor, extra: readonly Descriptor[]): Uint8Array {
  const layerOf = (descriptor: Descriptor, annotations: Record<string, string> | undefined) => {
    const layer: Record<string, unknown> = { mediaType: descriptor.mediaType, digest: descriptor.digest, size: descriptor.size };
    if (annotations) layer['annotations'] = annotations;
    return layer;
  };
  const layers = [layerOf(blob, artifact.blob.annotations), ...extra.map((d, i) => layerOf(d, artifact.extraBlobs![i]!.annotations))];
  const subject = { mediaType: artifact.subject.mediaType, digest: artifact.subject.digest, size: artifact.subject.size };
  const manifest: Record<string, unknown> = {
    schemaVersion: 2,
    mediaType: MEDIA_TYPE.ociManifest,
    artifactType: artifact.artifactType,
    config: { mediaType: EMPTY_CONFIG_DESCRIPTOR.mediaType, digest: EMPTY_CONFIG_DESCRIPTOR.digest, size: EMPTY_CONFIG_DESCRIPTOR.size },
    layers,
    subject,
  };
  if (artifact.annotations) manifest['annotations'] = artifact.annotations;
  return new TextEncoder().encode(JSON.stringify(manifest));
}

/**
 * Pushes an artifact that refers to `subject`: blob and empty config first, then the manifest
 * by digest, then (registries without the referrers API) the fallback tag's index with the
 * artifact added. The tag goes last: until it is written the artifact cannot be found, so an
 * interrupted push never leaves a findable artifact with missing parts.
 */
export async function pushReferrer(
  target: RegistryTarget,
  artifact: ReferrerArtifact,
  onBytes?: (bytes: number) => void,
): Promise<PushedReferrer> {
  const client = target.client;
  const blob: Descriptor = {
    mediaType: artifact.blob.mediaType,
    digest: sha256Digest(artifact.blob.bytes),
    size: artifact.blob.bytes.length,
  };
  let bytesUploaded = 0;
  const blobResult = await pushBlob(
    target,
    { digest: blob.digest, size: blob.size, content: artifact.blob.bytes },
    {
      onBytes: (bytes) => {
        bytesUploaded += bytes;
        onBytes?.(bytes);
      },
    },
  );
  const extraBlobs: Descriptor[] = [];
  for (const extra of artifact.extraBlobs ?? []) {
    if ('existing' in extra) {
      // Never a dangling layer: the registry must hold it (it is not ours to upload again).
      const missing = async (): Promise<Readable> => {
        throw new LayerNotFoundError(extra.existing.digest, `${target.ref.registry}/${target.ref.repository}`);
      };
      await pushBlob(target, { digest: extra.existing.digest, size: extra.existing.size, content: missing });
      extraBlobs.push({ mediaType: extra.mediaType, digest: extra.existing.digest, size: extra.existing.size });
      continue;
    }
    const descriptor: Descriptor = { mediaType: extra.mediaType, digest: sha256Digest(extra.bytes), size: extra.bytes.length };
    await pushBlob(
      target,
      { digest: descriptor.digest, size: descriptor.size, content: extra.bytes },
      {
        onBytes: (bytes) => {
          bytesUploaded += bytes;
          onBytes?.(bytes);
        },
      },
    );
    extraBlobs.push(descriptor);
  }
  await pushBlob(target, { digest: EMPTY_CONFIG_DESCRIPTOR.digest, size: EMPTY_CONFIG_DESCRIPTOR.size, content: EMPTY_CONFIG.bytes });

  const bytes = artifactManifestBytes(artifact, blob, extraBlobs);
  const digest = sha256Digest(bytes);
  const what = `PUT artifact manifest ${digest}`;
  const response = await client.send({
    method: 'PUT',
    path: `/v2/${target.ref.repository}/manifests/${digest}`,
    headers: { 'content-type': MEDIA_TYPE.ociManifest, 'content-length': String(bytes.length) },
    body: bytes,
    scopes: target.pushScopes,
    what,
  });
  if (response.status !== 201) throw await client.unexpected(response, what);
  await client.discard(response);
  const manifest: Descriptor = { mediaType: MEDIA_TYPE.ociManifest, digest, size: bytes.length, artifactType: artifact.artifactType };
  const indexedByRegistry =
    typeof response.headers['oci-subject'] === 'string' && response.headers['oci-subject'] === artifact.subject.digest;
  const result: PushedReferrer = { manifest, blob, extraBlobs, blobResult, bytesUploaded };
  if (indexedByRegistry) return result;

  // Read-modify-write of the fallback index: keep others' referrers, replace ours.
  const existing = (await readFallbackIndex(client, artifact.subject.digest)) ?? [];
  const entries = existing.filter((entry) => entry.digest !== digest);
  entries.push(manifest);
  const index = new TextEncoder().encode(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MEDIA_TYPE.ociIndex,
      manifests: entries.map((entry) => ({
        mediaType: entry.mediaType,
        digest: entry.digest,
        size: entry.size,
        ...(entry.artifactType ? { artifactType: entry.artifactType } : {}),
        ...(entry.annotations ? { annotations: entry.annotations } : {}),
      })),
    }),
  );
  const tag = referrersTag(artifact.subject.digest);
  const tagWhat = `PUT referrers tag ${tag}`;
  const tagResponse = await client.send({
    method: 'PUT',
    path: `/v2/${target.ref.repository}/manifests/${tag}`,
    headers: { 'content-type': MEDIA_TYPE.ociIndex, 'content-length': String(index.length) },
    body: index,
    scopes: target.pushScopes,
    what: tagWhat,
  });
  if (tagResponse.status !== 201) throw await client.unexpected(tagResponse, tagWhat);
  await client.discard(tagResponse);
  return { ...result, fallbackTag: tag };
}
