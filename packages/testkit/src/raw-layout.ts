// Writes an OCI layout around arbitrary (possibly malformed) layer tars, for error tests; well-formed
// layouts from specs come from layout.ts (buildLayout), the one builder every package's tests use.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';

function digestOf(data: Uint8Array): `sha256:${string}` {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

export interface RawLayout {
  ref: string;
  layerDigests: string[];
  manifestDigest: string;
}

export async function writeRawLayout(
  dir: string,
  tag: string,
  tars: Uint8Array[],
  options: {
    platform?: { os: string; architecture: string };
    /** Changes a layer's compressed blob before it is stored (e.g. corrupts it); the digest is of the result. */
    mutateBlob?: (blob: Uint8Array, index: number) => Uint8Array;
    /** How layers are compressed (default gzip; zstd with the `zstd` command). */
    compression?: 'gzip' | 'zstd';
  } = {},
): Promise<RawLayout> {
  const blobs = join(dir, 'blobs', 'sha256');
  await mkdir(blobs, { recursive: true });
  const put = async (data: Uint8Array) => {
    const digest = digestOf(data);
    await writeFile(join(blobs, digest.slice(7)), data);
    return { digest, size: data.length };
  };
  const layers = [];
  for (const [index, tar] of tars.entries()) {
    const zstd = options.compression === 'zstd';
    const compressed = zstd ? new Uint8Array(execFileSync('zstd', ['-q', '-c'], { input: tar })) : gzipSync(tar);
    const blob = options.mutateBlob ? options.mutateBlob(compressed, index) : compressed;
    const mediaType = `application/vnd.oci.image.layer.v1.tar+${zstd ? 'zstd' : 'gzip'}`;
    layers.push({ mediaType, ...(await put(blob)) });
  }
  const platform = options.platform ?? { os: 'linux', architecture: 'amd64' };
  const config = new TextEncoder().encode(
    JSON.stringify({ ...platform, config: { Cmd: ['/bin/sh'] }, rootfs: { type: 'layers', diff_ids: tars.map(digestOf) } }),
  );
  const configDescriptor = { mediaType: 'application/vnd.oci.image.config.v1+json', ...(await put(config)) };
  const manifest = new TextEncoder().encode(
    JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: configDescriptor, layers }),
  );
  const manifestDescriptor = { mediaType: 'application/vnd.oci.image.manifest.v1+json', ...(await put(manifest)) };
  await writeFile(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  await writeFile(
    join(dir, 'index.json'),
    JSON.stringify({ schemaVersion: 2, manifests: [{ ...manifestDescriptor, annotations: { 'org.opencontainers.image.ref.name': tag } }] }),
  );
  return { ref: `oci:${dir}:${tag}`, layerDigests: layers.map((layer) => layer.digest), manifestDigest: manifestDescriptor.digest };
}
