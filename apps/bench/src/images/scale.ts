// Synthetic images for the scale scenario: one gzip -1 layer of N tiny files, generated as a
// tar stream directly (no tree on disk, so 1M files cost ~1 GB of tar → ~100 MB of gzip and
// no inodes). Also writes the path list the lookup baseline parses.
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { once } from 'node:events';
import { createGzip } from 'node:zlib';
import { cachedDir } from './cache.js';
import { finishOciLayout, type BuiltImage } from './oci-layout.js';
import { TAR_END, tarDir, tarFile } from './tar-writer.js';

export interface ScaleImage {
  name: string;
  files: number;
  image: BuiltImage;
  /** Size of the uncompressed layer (the tar stream). */
  tarBytes: number;
  /** A file 13 components deep, looked up by the open + lookup measurement. */
  deepPath: string;
  /** A small file read by the fixed cold-start workload. */
  smallFile: string;
  /** JSON array of [path, size, mode] for every entry: the lookup baseline's input. */
  pathList: string;
}

const FILES_PER_DIR = 100;
const DEEP_DIRS = 'deep/a/b/c/d/e/f/g/h/i/j/k';

const HEX = Buffer.from('0123456789abcdef');

/**
 * Deterministic tiny content, 0–399 bytes of pseudo-random hex (xorshift): about as
 * compressible as text (gzip keeps ~55%), so the layer is not unrealistically small.
 */
function content(i: number): Buffer {
  const size = (i * 7919) % 400;
  const out = Buffer.allocUnsafe(size);
  let x = (i + 1) * 2654435761;
  for (let k = 0; k < size; k++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[k] = HEX[x & 15]!;
  }
  return out;
}

/** Entries in tar order: directories before their files. */
function* entries(files: number): Generator<{ path: string; dir: boolean; data?: Buffer }> {
  let lastTop = -1;
  let lastLeaf = -1;
  yield { path: 't', dir: true };
  for (let i = 0; i < files; i++) {
    const leaf = Math.floor(i / FILES_PER_DIR);
    const top = Math.floor(leaf / 100);
    if (top !== lastTop) yield { path: `t/${top}`, dir: true };
    if (leaf !== lastLeaf) yield { path: `t/${top}/${leaf % 100}`, dir: true };
    lastTop = top;
    lastLeaf = leaf;
    yield { path: `t/${top}/${leaf % 100}/f${i}.txt`, dir: false, data: content(i) };
  }
  const parts = DEEP_DIRS.split('/');
  for (let depth = 1; depth <= parts.length; depth++) yield { path: parts.slice(0, depth).join('/'), dir: true };
  yield { path: `${DEEP_DIRS}/target.txt`, dir: false, data: content(7) };
}

async function writeLayer(layoutDir: string, files: number, pathListFile: string) {
  const blobs = join(layoutDir, 'blobs', 'sha256');
  await mkdir(blobs, { recursive: true });
  const tmp = join(blobs, 'layer.tmp');
  const out = createWriteStream(tmp);
  const gzip = createGzip({ level: 1 });
  const diff = createHash('sha256');
  const digest = createHash('sha256');
  let size = 0;
  gzip.on('data', (chunk: Buffer) => {
    digest.update(chunk);
    size += chunk.length;
    if (!out.write(chunk)) gzip.pause();
  });
  out.on('drain', () => gzip.resume());
  const gzipDone = once(gzip, 'end');
  const list: string[] = [];
  let tarBytes = 0;
  let batch: Buffer[] = [];
  let batchBytes = 0;
  const flush = async () => {
    const chunk = Buffer.concat(batch);
    batch = [];
    batchBytes = 0;
    diff.update(chunk);
    tarBytes += chunk.length;
    if (!gzip.write(chunk)) await once(gzip, 'drain');
  };
  for (const entry of entries(files)) {
    const block = entry.dir ? tarDir(entry.path) : tarFile(entry.path, entry.data!);
    list.push(JSON.stringify([`/${entry.path}`, entry.data?.length ?? 0, entry.dir ? 0o40755 : 0o100644]));
    batch.push(block);
    batchBytes += block.length;
    if (batchBytes >= 1 << 20) await flush();
  }
  batch.push(TAR_END);
  await flush();
  gzip.end();
  await gzipDone;
  out.end();
  await once(out, 'finish');
  const digestHex = digest.digest('hex');
  await rename(tmp, join(blobs, digestHex));
  await writeFile(pathListFile, `[${list.join(',\n')}]\n`);
  return { layer: { digest: `sha256:${digestHex}`, size, diffId: `sha256:${diff.digest('hex')}` }, tarBytes };
}

export async function scaleImage(files: number): Promise<ScaleImage> {
  const name = `scale-${files >= 1e6 ? `${files / 1e6}M` : `${files / 1e3}k`}`;
  const { dir, meta } = await cachedDir('layouts', name, { files, version: 2 }, async (target) => {
    const layoutDir = join(target, 'layout');
    const { layer, tarBytes } = await writeLayer(layoutDir, files, join(target, 'paths.json'));
    const image = await finishOciLayout(layoutDir, 'latest', [layer]);
    return { image, tarBytes };
  });
  return {
    name,
    files,
    ...meta,
    deepPath: `/${DEEP_DIRS}/target.txt`,
    smallFile: '/t/0/0/f1.txt',
    pathList: join(dir, 'paths.json'),
  };
}
