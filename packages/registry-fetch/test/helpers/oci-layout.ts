// Builds small OCI image layouts for tests: real gzip tar layers (testkit's tar writer + zlib),
// configs with diff_ids, manifests, optional multi-platform indexes, tags in index.json.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import { encodeTar } from '@clip/testkit';

const run = promisify(execFile);

export type TestDigest = `sha256:${string}`;
export interface TestPlatform {
  os: string;
  architecture: string;
  variant?: string;
}
export interface TestLayer {
  files: Record<string, string | Buffer>;
  compression?: 'gzip' | 'none';
}
export interface TestImage {
  layers: TestLayer[];
  platform?: TestPlatform;
}
export interface BuiltBlob {
  digest: TestDigest;
  bytes: Buffer;
  mediaType: string;
}
export interface BuiltImage {
  manifest: BuiltBlob;
  config: BuiltBlob;
  layers: Array<BuiltBlob & { diffId: TestDigest }>;
}
export interface BuiltEntry {
  tag: string;
  /** The manifest or index index.json points at. */
  top: BuiltBlob;
  images: BuiltImage[];
}

export function sha256(bytes: Uint8Array): TestDigest {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

/** Deterministic pseudo-random bytes (incompressible enough to make a layer of a given size). */
export function noise(size: number, seed = 1): Buffer {
  const out = Buffer.alloc(size);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

function tarOf(files: Record<string, string | Buffer>): Buffer {
  return encodeTar(
    Object.entries(files).map(([name, content]) => ({
      name,
      type: 'file' as const,
      mode: 0o644,
      uid: 0,
      gid: 0,
      mtime: 0,
      data: typeof content === 'string' ? Buffer.from(content) : content,
    })),
  );
}

async function writeBlob(dir: string, bytes: Buffer, mediaType: string): Promise<BuiltBlob> {
  const digest = sha256(bytes);
  await mkdir(join(dir, 'blobs', 'sha256'), { recursive: true });
  await writeFile(join(dir, 'blobs', 'sha256', digest.slice('sha256:'.length)), bytes);
  return { digest, bytes, mediaType };
}

function descriptor(blob: BuiltBlob, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { mediaType: blob.mediaType, digest: blob.digest, size: blob.bytes.length, ...extra };
}

async function buildImage(dir: string, image: TestImage): Promise<BuiltImage> {
  const layers: BuiltImage['layers'] = [];
  for (const layer of image.layers) {
    const raw = tarOf(layer.files);
    const gzip = (layer.compression ?? 'gzip') === 'gzip';
    const blob = await writeBlob(
      dir,
      gzip ? gzipSync(raw, { level: 1 }) : raw,
      gzip ? 'application/vnd.oci.image.layer.v1.tar+gzip' : 'application/vnd.oci.image.layer.v1.tar',
    );
    layers.push({ ...blob, diffId: sha256(raw) });
  }
  const platform = image.platform ?? { os: 'linux', architecture: 'amd64' };
  const configJson = {
    architecture: platform.architecture,
    os: platform.os,
    ...(platform.variant ? { variant: platform.variant } : {}),
    config: { Cmd: ['/bin/sh'], Env: ['PATH=/usr/bin:/bin'] },
    rootfs: { type: 'layers', diff_ids: layers.map((layer) => layer.diffId) },
  };
  const config = await writeBlob(dir, Buffer.from(JSON.stringify(configJson)), 'application/vnd.oci.image.config.v1+json');
  const manifestJson = {
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: descriptor(config),
    layers: layers.map((layer) => descriptor(layer)),
  };
  const manifest = await writeBlob(dir, Buffer.from(JSON.stringify(manifestJson)), 'application/vnd.oci.image.manifest.v1+json');
  return { manifest, config, layers };
}

/**
 * Writes an OCI layout to `dir` with one index.json entry per tag. An entry with several
 * images becomes an image index (one manifest per platform).
 */
export async function writeTestLayout(
  dir: string,
  entries: Array<{ tag: string; images: TestImage[]; forceIndex?: boolean }>,
): Promise<BuiltEntry[]> {
  await mkdir(dir, { recursive: true });
  const built: BuiltEntry[] = [];
  for (const entry of entries) {
    const images: BuiltImage[] = [];
    for (const image of entry.images) images.push(await buildImage(dir, image));
    let top: BuiltBlob;
    if (images.length === 1 && !entry.forceIndex) {
      top = images[0]!.manifest;
    } else {
      const indexJson = {
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.index.v1+json',
        manifests: images.map((image, i) =>
          descriptor(image.manifest, { platform: entry.images[i]!.platform ?? { os: 'linux', architecture: 'amd64' } }),
        ),
      };
      top = await writeBlob(dir, Buffer.from(JSON.stringify(indexJson)), 'application/vnd.oci.image.index.v1+json');
    }
    built.push({ tag: entry.tag, top, images });
  }
  await writeFile(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  await writeFile(
    join(dir, 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.index.v1+json',
      manifests: built.map((entry) => descriptor(entry.top, { annotations: { 'org.opencontainers.image.ref.name': entry.tag } })),
    }),
  );
  return built;
}

/** Tars a layout directory into an oci-archive file (with `./` prefixed names, like skopeo). */
export async function archiveLayout(dir: string, file: string): Promise<void> {
  await run('tar', ['-C', dir, '-cf', file, '.']);
}
