// Writes OCI image layouts (image-spec v1.1 `oci-layout` + index.json + blobs) from
// declarative layer specs, deterministically: the same spec gives the same digests.
import { execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import type { Digest, Platform } from '@clip/shared';
import type { FileContent } from './content.js';
import { layerTarEntries, type LayerCompression, type LayerSpec } from './layer-spec.js';
import { expectedTree } from './overlay.js';
import { encodeTar } from './tar-writer.js';
import type { Tree } from './tree.js';

export const MEDIA_TYPES = {
  index: 'application/vnd.oci.image.index.v1+json',
  manifest: 'application/vnd.oci.image.manifest.v1+json',
  config: 'application/vnd.oci.image.config.v1+json',
  layer: {
    none: 'application/vnd.oci.image.layer.v1.tar',
    gzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
    zstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
  } satisfies Record<LayerCompression, string>,
} as const;

export const REF_NAME_ANNOTATION = 'org.opencontainers.image.ref.name';

export type { Platform };

/** Runtime config, written into the image config's `config` object. */
export interface ImageConfigSpec {
  Entrypoint?: string[];
  Cmd?: string[];
  Env?: string[];
  WorkingDir?: string;
  User?: string;
  Labels?: Record<string, string>;
  StopSignal?: string;
}

export interface PlatformImageSpec {
  platform: Platform;
  /** Default: the layout's `layers`. */
  layers?: LayerSpec[];
  config?: ImageConfigSpec;
}

export interface LayoutSpec {
  /** Tag written as `org.opencontainers.image.ref.name` in index.json; default `latest`. */
  tag?: string;
  layers: LayerSpec[];
  config?: ImageConfigSpec;
  /** Single-platform image platform; default linux/amd64. */
  platform?: Platform;
  /** When given, the tag points at an image index (nested blob) with one manifest per platform. */
  platforms?: PlatformImageSpec[];
}

export interface BuiltLayer {
  digest: Digest;
  diffId: Digest;
  mediaType: string;
  compression: LayerCompression;
  /** Compressed (blob) size. */
  size: number;
  uncompressedSize: number;
  /** Path of the blob file. */
  blobPath: string;
}

export interface BuiltImage {
  platform: Platform;
  /**
   * Tag naming this manifest alone. Single platform: the layout tag. Multi-platform: an extra
   * tag `<tag>-<os>-<arch>[-<variant>]` (umoci cannot pick a platform out of an index).
   */
  tag: string;
  /** `oci:<dir>:<image tag>`. */
  ref: string;
  /** `<dir>:<image tag>` (umoci --image). */
  umociRef: string;
  manifestDigest: Digest;
  manifestSize: number;
  configDigest: Digest;
  configSize: number;
  layers: BuiltLayer[];
  /** The unpacked tree the layers should produce (OCI overlay rules). */
  expected: Tree;
}

export interface BuiltLayout {
  /** Layout directory. */
  dir: string;
  tag: string;
  /** `oci:<dir>:<tag>` (skopeo / clip source reference). */
  ref: string;
  /** `<dir>:<tag>` (umoci --image). */
  umociRef: string;
  /** What the tag points at: the manifest (single platform) or the image index. */
  topDigest: Digest;
  topMediaType: string;
  topSize: number;
  images: BuiltImage[];
  /** images[0]. */
  image: BuiltImage;
  /** images[0].expected. */
  expected: Tree;
}

interface Descriptor {
  mediaType: string;
  digest: Digest;
  size: number;
  annotations?: Record<string, string>;
  platform?: Platform;
}

function digestOf(data: Uint8Array): Digest {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

async function writeBlob(dir: string, data: Uint8Array): Promise<{ digest: Digest; size: number; path: string }> {
  const digest = digestOf(data);
  const path = join(dir, 'blobs', 'sha256', digest.slice('sha256:'.length));
  await writeFile(path, data);
  return { digest, size: data.byteLength, path };
}

/** Compresses with the `zstd` CLI (no zstd encoder in Node 20). */
export async function zstdCompress(data: Uint8Array, level = 3): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const child = spawn('zstd', ['-q', '-c', `-${level}`, '--no-check'], { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let err = '';
    child.stdout.on('data', (chunk: Buffer) => out.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
    child.once('error', (error) => reject(new Error(`cannot run zstd (install the zstd package): ${error.message}`)));
    child.once('close', (code) => {
      if (code === 0) resolve(Buffer.concat(out));
      else reject(new Error(`zstd exited with ${code}: ${err}`));
    });
    child.stdin.end(data);
  });
}

export async function compressLayer(tar: Buffer, layer: LayerSpec): Promise<Buffer> {
  switch (layer.compression) {
    case 'none':
      return tar;
    case 'zstd': {
      const frame = layer.zstdFrameSize;
      if (!frame) return zstdCompress(tar, layer.zstdLevel);
      const frames: Buffer[] = [];
      for (let start = 0; start < tar.length; start += frame) {
        frames.push(await zstdCompress(tar.subarray(start, Math.min(start + frame, tar.length)), layer.zstdLevel));
      }
      return Buffer.concat(frames);
    }
    case 'gzip': {
      const level = layer.gzipLevel ?? 6;
      const member = layer.gzipMemberSize;
      if (!member) return gzipSync(tar, { level });
      const members: Buffer[] = [];
      for (let start = 0; start < tar.length; start += member) {
        members.push(gzipSync(tar.subarray(start, Math.min(start + member, tar.length)), { level }));
      }
      return Buffer.concat(members);
    }
  }
}

async function buildImage(
  dir: string,
  tag: string,
  platform: Platform,
  layers: LayerSpec[],
  config: ImageConfigSpec | undefined,
): Promise<{ image: BuiltImage; descriptor: Descriptor }> {
  const built: BuiltLayer[] = [];
  for (const layer of layers) {
    const tar = encodeTar(layerTarEntries(layer));
    const blob = await writeBlob(dir, await compressLayer(tar, layer));
    built.push({
      digest: blob.digest,
      diffId: digestOf(tar),
      mediaType: MEDIA_TYPES.layer[layer.compression],
      compression: layer.compression,
      size: blob.size,
      uncompressedSize: tar.length,
      blobPath: blob.path,
    });
  }
  const configJson = {
    created: '2023-11-14T22:13:20Z',
    architecture: platform.architecture,
    os: platform.os,
    ...(platform.variant ? { variant: platform.variant } : {}),
    config: config ?? {},
    rootfs: { type: 'layers', diff_ids: built.map((l) => l.diffId) },
    history: built.map((_, i) => ({ created: '2023-11-14T22:13:20Z', created_by: `clip testkit layer ${i}` })),
  };
  const configBlob = await writeBlob(dir, Buffer.from(JSON.stringify(configJson)));
  const manifest = {
    schemaVersion: 2,
    mediaType: MEDIA_TYPES.manifest,
    config: { mediaType: MEDIA_TYPES.config, digest: configBlob.digest, size: configBlob.size },
    layers: built.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size })),
  };
  const manifestBlob = await writeBlob(dir, Buffer.from(JSON.stringify(manifest)));
  return {
    image: {
      platform,
      tag,
      ref: `oci:${dir}:${tag}`,
      umociRef: `${dir}:${tag}`,
      manifestDigest: manifestBlob.digest,
      manifestSize: manifestBlob.size,
      configDigest: configBlob.digest,
      configSize: configBlob.size,
      layers: built,
      expected: expectedTree(layers),
    },
    descriptor: { mediaType: MEDIA_TYPES.manifest, digest: manifestBlob.digest, size: manifestBlob.size, platform },
  };
}

async function readIndex(dir: string): Promise<{ schemaVersion: number; mediaType?: string; manifests: Descriptor[] }> {
  try {
    return JSON.parse(await readFile(join(dir, 'index.json'), 'utf8')) as { schemaVersion: number; manifests: Descriptor[] };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { schemaVersion: 2, manifests: [] };
    throw error;
  }
}

/**
 * Writes (or adds to) an OCI image layout at `dir` and tags the image `spec.tag`. An existing
 * layout keeps its other tags; a tag that exists is moved.
 */
export async function buildLayout(dir: string, spec: LayoutSpec): Promise<BuiltLayout> {
  const tag = spec.tag ?? 'latest';
  await mkdir(join(dir, 'blobs', 'sha256'), { recursive: true });
  await writeFile(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));

  const images: BuiltImage[] = [];
  let top: Descriptor;
  if (spec.platforms && spec.platforms.length > 0) {
    const descriptors: Descriptor[] = [];
    for (const p of spec.platforms) {
      const { os, architecture, variant } = p.platform;
      const platformTag = [tag, os, architecture, ...(variant ? [variant] : [])].join('-');
      const { image, descriptor } = await buildImage(dir, platformTag, p.platform, p.layers ?? spec.layers, p.config ?? spec.config);
      images.push(image);
      descriptors.push(descriptor);
    }
    const index = { schemaVersion: 2, mediaType: MEDIA_TYPES.index, manifests: descriptors };
    const blob = await writeBlob(dir, Buffer.from(JSON.stringify(index)));
    top = { mediaType: MEDIA_TYPES.index, digest: blob.digest, size: blob.size };
  } else {
    const platform = spec.platform ?? { os: 'linux', architecture: 'amd64' };
    const { image, descriptor } = await buildImage(dir, tag, platform, spec.layers, spec.config);
    images.push(image);
    top = { mediaType: descriptor.mediaType, digest: descriptor.digest, size: descriptor.size };
  }

  const tags: Array<[string, Descriptor]> = [[tag, top]];
  if (spec.platforms && spec.platforms.length > 0) {
    images.forEach((image) => {
      const { os, architecture, variant } = image.platform;
      tags.push([
        image.tag,
        {
          mediaType: MEDIA_TYPES.manifest,
          digest: image.manifestDigest,
          size: image.manifestSize,
          platform: { os, architecture, ...(variant ? { variant } : {}) },
        },
      ]);
    });
  }
  const index = await readIndex(dir);
  index.mediaType = MEDIA_TYPES.index;
  const names = new Set(tags.map(([name]) => name));
  index.manifests = index.manifests.filter((d) => !names.has(d.annotations?.[REF_NAME_ANNOTATION] ?? ''));
  for (const [name, descriptor] of tags) index.manifests.push({ ...descriptor, annotations: { [REF_NAME_ANNOTATION]: name } });
  await writeFile(join(dir, 'index.json'), JSON.stringify(index));

  const first = images[0];
  if (!first) throw new Error('layout spec produced no image');
  return {
    dir,
    tag,
    ref: `oci:${dir}:${tag}`,
    umociRef: `${dir}:${tag}`,
    topDigest: top.digest,
    topMediaType: top.mediaType,
    topSize: top.size,
    images,
    image: first,
    expected: first.expected,
  };
}

/** A layer of regular files (mode 0644, root-owned) from a path → content map. */
export function filesLayer(files: Record<string, FileContent>, compression: LayerCompression = 'gzip'): LayerSpec {
  return { compression, entries: Object.entries(files).map(([path, content]) => ({ type: 'file' as const, path, content })) };
}

/** Tars a layout directory into an oci-archive file (with `./` prefixed names, like skopeo). */
export async function archiveLayout(dir: string, file: string): Promise<void> {
  await promisify(execFile)('tar', ['-C', dir, '-cf', file, '.']);
}

/** A built layer's blob, read back from the layout (tests compare fetched bytes with it). */
export function blobBytes(layer: BuiltLayer): Buffer {
  return readFileSync(layer.blobPath);
}
