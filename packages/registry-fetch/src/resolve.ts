// Resolution shared by every source: from the manifest or index a reference names, down to
// one platform's manifest, its config and its layers. Sources only supply the bytes.
import { isDigest, verifyDigest, type Digest } from '@clip/shared';
import { ImageFormatError } from './errors.js';
import type { Descriptor, ImageConfig, LayerDescriptor, Platform, RawManifest, ResolvedImage, ResolveOptions } from './image-source.js';
import { isIndexMediaType, layerCompression } from './media-types.js';
import { hostPlatform, selectPlatform } from './platform.js';

export interface ManifestReader {
  /** A manifest or index by digest, already digest-verified. */
  fetchManifest(digest: Digest): Promise<RawManifest>;
  /** The whole (small) blob, e.g. the config. Need not be verified: resolve checks it. */
  readSmallBlob(descriptor: Descriptor): Promise<Uint8Array>;
}

/** Nested indexes deeper than this are treated as malformed (and would be a loop risk). */
const MAX_INDEX_DEPTH = 4;

function parseJsonObject(bytes: Uint8Array, what: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch (error) {
    throw new ImageFormatError(`${what} is not valid JSON`, { cause: error });
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new ImageFormatError(`${what} is not a JSON object`);
  return value as Record<string, unknown>;
}

function parsePlatformField(value: unknown): Platform | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const record = value as Record<string, unknown>;
  const os = record['os'];
  const architecture = record['architecture'];
  const variant = record['variant'];
  if (typeof os !== 'string' || typeof architecture !== 'string') return undefined;
  return typeof variant === 'string' && variant !== '' ? { os, architecture, variant } : { os, architecture };
}

/** Validates one descriptor object from a manifest or index. */
export function parseDescriptor(value: unknown, what: string): Descriptor {
  if (typeof value !== 'object' || value === null) throw new ImageFormatError(`${what}: descriptor is not an object`);
  const record = value as Record<string, unknown>;
  const { mediaType, digest, size } = record;
  if (typeof mediaType !== 'string') throw new ImageFormatError(`${what}: descriptor has no mediaType`);
  if (typeof digest !== 'string' || !isDigest(digest))
    throw new ImageFormatError(`${what}: descriptor has a bad digest ${JSON.stringify(digest)}`);
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0)
    throw new ImageFormatError(`${what}: descriptor ${digest} has a bad size`);
  const descriptor: Descriptor = { mediaType, digest, size };
  const platform = parsePlatformField(record['platform']);
  if (platform) descriptor.platform = platform;
  if (typeof record['annotations'] === 'object' && record['annotations'] !== null) {
    descriptor.annotations = record['annotations'] as Record<string, string>;
  }
  if (typeof record['artifactType'] === 'string') descriptor.artifactType = record['artifactType'];
  return descriptor;
}

/** The `manifests` list of an image index. */
export function parseIndexEntries(bytes: Uint8Array, what: string): Descriptor[] {
  const index = parseJsonObject(bytes, what);
  const manifests = index['manifests'];
  if (!Array.isArray(manifests)) throw new ImageFormatError(`${what} has no manifests list`);
  return manifests.map((entry, i) => parseDescriptor(entry, `${what} manifests[${i}]`));
}

/** Config descriptor and layer descriptors of an image manifest. */
export function parseImageManifest(bytes: Uint8Array, what: string): { config: Descriptor; layers: Descriptor[] } {
  const manifest = parseJsonObject(bytes, what);
  const layers = manifest['layers'];
  if (!Array.isArray(layers)) throw new ImageFormatError(`${what} has no layers list`);
  return {
    config: parseDescriptor(manifest['config'], `${what} config`),
    layers: layers.map((layer, i) => parseDescriptor(layer, `${what} layers[${i}]`)),
  };
}

function parseConfig(bytes: Uint8Array, what: string): ImageConfig {
  const config = parseJsonObject(bytes, what);
  const rootfs = config['rootfs'];
  if (typeof rootfs !== 'object' || rootfs === null) throw new ImageFormatError(`${what} has no rootfs`);
  const diffIds = (rootfs as Record<string, unknown>)['diff_ids'];
  if (!Array.isArray(diffIds) || !diffIds.every((id): id is Digest => typeof id === 'string' && isDigest(id))) {
    throw new ImageFormatError(`${what} has a bad rootfs.diff_ids list`);
  }
  return config as ImageConfig;
}

export async function resolveImage(
  reference: string,
  top: RawManifest,
  reader: ManifestReader,
  options: ResolveOptions = {},
): Promise<ResolvedImage> {
  const wanted = options.platform ?? hostPlatform();
  options.onTopManifest?.(top);
  let current = top;
  let indexPart: Pick<ResolvedImage, 'indexDigest' | 'indexBytes' | 'indexMediaType'> = {};
  let platform: Platform | undefined;
  for (let depth = 0; isIndexMediaType(current.mediaType); depth++) {
    if (depth >= MAX_INDEX_DEPTH) throw new ImageFormatError(`${reference}: image indexes nested more than ${MAX_INDEX_DEPTH} deep`);
    if (depth === 0) indexPart = { indexDigest: current.digest, indexBytes: current.bytes, indexMediaType: current.mediaType };
    const entry = selectPlatform(parseIndexEntries(current.bytes, `image index ${current.digest}`), wanted);
    platform = entry.platform ?? platform;
    current = await reader.fetchManifest(entry.digest);
  }

  const what = `manifest ${current.digest} of ${reference}`;
  const manifest = parseImageManifest(current.bytes, what);
  const configBytes = await reader.readSmallBlob(manifest.config);
  verifyDigest(`config of ${reference}`, configBytes, manifest.config.digest);
  const config = parseConfig(configBytes, `config ${manifest.config.digest} of ${reference}`);
  const diffIds = config.rootfs.diff_ids;
  if (diffIds.length !== manifest.layers.length) {
    throw new ImageFormatError(`${what} has ${manifest.layers.length} layers but its config lists ${diffIds.length} diff_ids`);
  }
  const layers: LayerDescriptor[] = manifest.layers.map((layer, i) => ({
    ...layer,
    diffId: diffIds[i] as Digest,
    compression: layerCompression(layer.mediaType),
  }));
  platform ??= config.os && config.architecture ? parsePlatformField(config) : undefined;
  return {
    reference,
    ...indexPart,
    manifestDigest: current.digest,
    manifestMediaType: current.mediaType,
    manifestBytes: current.bytes,
    configDescriptor: manifest.config,
    configBytes,
    config,
    layers,
    ...(platform ? { platform } : {}),
  };
}
