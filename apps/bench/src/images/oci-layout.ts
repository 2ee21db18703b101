// Not the testkit's buildLayout: this streams real, GB-sized directory trees through tar and gzip on disk.
// Writes a local OCI layout from directory trees, one gzip layer per tree (tar --sort=name,
// numeric owners, gzip -n), the way a build worker's output looks.
import { createHash } from 'node:crypto';
import { mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { sh } from '../util/exec.js';

export interface LayerSource {
  /** Directory to tar. */
  root: string;
  /** Paths relative to root to include (default: everything). */
  include?: string[];
  /** Paths relative to root to leave out. */
  exclude?: string[];
  /** Exactly these entries (relative paths, parents first), without recursion; overrides include. */
  list?: string[];
}

export interface ImageRuntime {
  env?: string[];
  cmd?: string[];
}

export interface BuiltImage {
  layoutDir: string;
  tag: string;
  /** `oci:<dir>:<tag>` */
  reference: string;
  layers: { digest: string; size: number; diffId: string }[];
  compressedBytes: number;
}

function sha256(data: Uint8Array | string): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

async function writeBlob(layoutDir: string, data: Uint8Array | string): Promise<{ digest: string; size: number }> {
  const digest = sha256(data);
  await writeFile(join(layoutDir, 'blobs', 'sha256', digest.slice(7)), data);
  return { digest, size: Buffer.byteLength(data) };
}

function quote(text: string): string {
  return `'${text.replaceAll("'", "'\\''")}'`;
}

async function writeLayer(layoutDir: string, source: LayerSource, gzipLevel: number): Promise<BuiltImage['layers'][number]> {
  const tmp = join(layoutDir, 'layer.tmp');
  const diffFile = join(layoutDir, 'diffid.tmp');
  const listFile = join(layoutDir, 'members.tmp');
  let members = (source.include ?? ['.']).map((path) => quote(path.startsWith('.') ? path : `./${path}`)).join(' ');
  if (source.list) {
    // NUL-separated: names are taken verbatim (a leading '-' is not an option).
    await writeFile(listFile, source.list.map((path) => `./${path}\0`).join(''));
    members = `--no-recursion --null --verbatim-files-from -T ${quote(listFile)}`;
  }
  const excludes = (source.exclude ?? []).map((path) => `--exclude=${quote(`./${path}`)}`).join(' ');
  await sh(
    `tar -C ${quote(source.root)} --sort=name --numeric-owner --xattrs ${excludes} -cf - ${members}` +
      ` | tee >(sha256sum | cut -d' ' -f1 > ${quote(diffFile)}) | gzip -n -${gzipLevel} > ${quote(tmp)}`,
  );
  // The process substitution may still be writing when tar|gzip finish.
  let diffHex = '';
  for (let i = 0; i < 100 && diffHex.length !== 64; i++) {
    diffHex = (await readFile(diffFile, 'utf8').catch(() => '')).trim();
    if (diffHex.length !== 64) await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const digestHex = (await sh(`sha256sum ${quote(tmp)} | cut -d' ' -f1`)).stdout.trim();
  const size = (await stat(tmp)).size;
  await rename(tmp, join(layoutDir, 'blobs', 'sha256', digestHex));
  await rm(diffFile, { force: true });
  await rm(listFile, { force: true });
  return { digest: `sha256:${digestHex}`, size, diffId: `sha256:${diffHex}` };
}

export async function writeOciLayout(
  layoutDir: string,
  tag: string,
  layers: LayerSource[],
  runtime: ImageRuntime = {},
  gzipLevel = 6,
): Promise<BuiltImage> {
  await rm(layoutDir, { recursive: true, force: true });
  await mkdir(join(layoutDir, 'blobs', 'sha256'), { recursive: true });
  const built: BuiltImage['layers'] = [];
  for (const layer of layers) built.push(await writeLayer(layoutDir, layer, gzipLevel));
  return finishOciLayout(layoutDir, tag, built, runtime);
}

/** Writes config, manifest and index for layer blobs already in `<layoutDir>/blobs/sha256`. */
export async function finishOciLayout(
  layoutDir: string,
  tag: string,
  built: BuiltImage['layers'],
  runtime: ImageRuntime = {},
): Promise<BuiltImage> {
  const config = JSON.stringify({
    architecture: 'amd64',
    os: 'linux',
    config: { Env: runtime.env ?? ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'], Cmd: runtime.cmd ?? ['/bin/sh'] },
    rootfs: { type: 'layers', diff_ids: built.map((layer) => layer.diffId) },
  });
  const configBlob = await writeBlob(layoutDir, config);
  const manifest = JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...configBlob },
    layers: built.map((layer) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: layer.digest, size: layer.size })),
  });
  const manifestBlob = await writeBlob(layoutDir, manifest);
  await writeFile(join(layoutDir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  await writeFile(
    join(layoutDir, 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [
        {
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          ...manifestBlob,
          annotations: { 'org.opencontainers.image.ref.name': tag },
        },
      ],
    }),
  );
  return {
    layoutDir,
    tag,
    reference: `oci:${layoutDir}:${tag}`,
    layers: built,
    compressedBytes: built.reduce((sum, layer) => sum + layer.size, 0),
  };
}
