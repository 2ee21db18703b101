// Media types of manifests, indexes and layers (OCI image spec and Docker schema 2), and
// what a layer's media type says about its compression.
import type { LayerCompression } from './image-source.js';
import { ImageFormatError } from './errors.js';

export const MEDIA_TYPE = {
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  ociLayerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  ociLayerZstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
  ociLayer: 'application/vnd.oci.image.layer.v1.tar',
  dockerLayerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
} as const;

/** The Accept header for manifest GETs: every manifest and index type we can read. */
export const MANIFEST_ACCEPT = [MEDIA_TYPE.ociManifest, MEDIA_TYPE.ociIndex, MEDIA_TYPE.dockerManifest, MEDIA_TYPE.dockerManifestList].join(
  ', ',
);

export function isIndexMediaType(mediaType: string): boolean {
  return mediaType === MEDIA_TYPE.ociIndex || mediaType === MEDIA_TYPE.dockerManifestList;
}

export function isManifestMediaType(mediaType: string): boolean {
  return mediaType === MEDIA_TYPE.ociManifest || mediaType === MEDIA_TYPE.dockerManifest;
}

const LAYER_COMPRESSION: Record<string, LayerCompression> = {
  [MEDIA_TYPE.ociLayerGzip]: 'gzip',
  [MEDIA_TYPE.ociLayerZstd]: 'zstd',
  [MEDIA_TYPE.ociLayer]: 'none',
  'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip': 'gzip',
  'application/vnd.oci.image.layer.nondistributable.v1.tar+zstd': 'zstd',
  'application/vnd.oci.image.layer.nondistributable.v1.tar': 'none',
  [MEDIA_TYPE.dockerLayerGzip]: 'gzip',
  'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip': 'gzip',
  // Docker never writes this one, but some tools do for uncompressed layers.
  'application/vnd.docker.image.rootfs.diff.tar': 'none',
};

export function layerCompression(mediaType: string): LayerCompression {
  const compression = LAYER_COMPRESSION[mediaType];
  if (!compression) throw new ImageFormatError(`unsupported layer media type ${JSON.stringify(mediaType)}`);
  return compression;
}

/**
 * The media type of manifest bytes: the declared one (descriptor or Content-Type) when it is
 * one we know, else the `mediaType` field inside, else guessed from the shape.
 */
export function detectManifestMediaType(bytes: Uint8Array, declared: string | undefined, what: string): string {
  const clean = declared?.split(';')[0]?.trim();
  if (clean && (isIndexMediaType(clean) || isManifestMediaType(clean))) return clean;
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch (error) {
    throw new ImageFormatError(`${what} is not valid JSON`, { cause: error });
  }
  if (typeof parsed !== 'object' || parsed === null) throw new ImageFormatError(`${what} is not a JSON object`);
  const record = parsed as Record<string, unknown>;
  if (record['schemaVersion'] === 1) throw new ImageFormatError(`${what} is a Docker schema 1 manifest, which is not supported`);
  const inner = record['mediaType'];
  if (typeof inner === 'string' && (isIndexMediaType(inner) || isManifestMediaType(inner))) return inner;
  // A document that names another media type is not an image, whatever its shape.
  if (typeof inner === 'string') throw new ImageFormatError(`${what} has media type ${inner}, which is not an image manifest or index`);
  if (Array.isArray(record['manifests'])) return MEDIA_TYPE.ociIndex;
  if (Array.isArray(record['layers'])) return MEDIA_TYPE.ociManifest;
  throw new ImageFormatError(`${what} is neither an image manifest nor an image index (media type ${clean ?? 'unknown'})`);
}
