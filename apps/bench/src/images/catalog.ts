// The images the benchmark runs: Debian + python (minimal, or with numpy/pandas), and a
// synthetic image for scale. Each comes as a cached local OCI layout plus its workload.
import { stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { sh } from '../util/exec.js';
import { cachedDir } from './cache.js';
import { ensureDebianRootfs, type DebianSpec } from './debian.js';
import { writeOciLayout, type BuiltImage } from './oci-layout.js';
import { SYNTHETIC_FULL, SYNTHETIC_QUICK, writeSyntheticTree, type SyntheticSpec } from './synthetic.js';
import { chrootWorkload, readFilesWorkload, type Workload } from './workload.js';

export interface BenchImage {
  name: string;
  description: string;
  image: BuiltImage;
  uncompressedBytes: number;
  workload: Workload;
  /** A large file (path inside the image) for sequential read tests. */
  bigFile: string;
  /** A small regular file (path inside the image) for first-read latency. */
  smallFile: string;
}

interface LayoutMeta {
  image: BuiltImage;
  uncompressedBytes: number;
  bigFile: string;
}

async function treeBytes(dir: string): Promise<number> {
  const result = await sh(`du -sb --apparent-size '${dir}' | cut -f1`);
  return Number(result.stdout.trim());
}

async function largestFile(root: string): Promise<string> {
  const result = await sh(`cd '${root}' && find . -xdev -type f -printf '%s %P\\n' | sort -n | tail -1 | cut -d' ' -f2-`);
  return result.stdout.trim();
}

const PYTHON_MINIMAL: DebianSpec = { name: 'python-minimal', suite: 'bookworm', packages: ['python3'] };
const PYTHON_SCI: DebianSpec = { name: 'python-sci', suite: 'bookworm', packages: ['python3', 'python3-numpy', 'python3-pandas'] };

async function debianImage(spec: DebianSpec, workload: Workload, description: string): Promise<BenchImage> {
  const rootfs = await ensureDebianRootfs(spec);
  // Two layers like a real image: the base system, then the Python site packages.
  const layers = [
    { root: rootfs, exclude: ['usr/lib/python3/dist-packages'] },
    { root: rootfs, include: ['usr/lib/python3/dist-packages'] },
  ];
  const { meta } = await cachedDir<LayoutMeta>('layouts', spec.name, { spec, layers: 2, version: 1 }, async (dir) => {
    const image = await writeOciLayout(join(dir, 'layout'), 'latest', layers, { cmd: ['/usr/bin/python3'] });
    return { image, uncompressedBytes: await treeBytes(rootfs), bigFile: await largestFile(rootfs) };
  });
  return { name: spec.name, description, workload, smallFile: 'etc/debian_version', ...meta };
}

export function pythonMinimalImage(): Promise<BenchImage> {
  return debianImage(
    PYTHON_MINIMAL,
    chrootWorkload("python3 -c 'import json, sqlite3'", "python3 -c 'import json, sqlite3; print(1)'"),
    'Debian bookworm minbase + python3 (mmdebstrap)',
  );
}

export function pythonSciImage(): Promise<BenchImage> {
  return debianImage(
    PYTHON_SCI,
    chrootWorkload("python3 -c 'import numpy, pandas'", "python3 -c 'import json, sqlite3, numpy, pandas; print(1)'"),
    'Debian bookworm minbase + python3, python3-numpy, python3-pandas (mmdebstrap)',
  );
}

export async function syntheticImage(scale: 'quick' | 'full'): Promise<BenchImage> {
  const spec: SyntheticSpec = scale === 'quick' ? SYNTHETIC_QUICK : SYNTHETIC_FULL;
  const name = `synthetic-${scale}`;
  const { dir, meta } = await cachedDir<LayoutMeta>('layouts', name, { spec, version: 1 }, async (target) => {
    const tree = await writeSyntheticTree(join(target, 'tree'), spec);
    await writeFile(join(target, 'hot.txt'), `${tree.hotFiles.join('\n')}\n`);
    const image = await writeOciLayout(join(target, 'layout'), 'latest', tree.layerRoots.map((root) => ({ root })), {}, 6);
    await sh(`rm -rf '${join(target, 'tree')}'`);
    return { image, uncompressedBytes: tree.uncompressedBytes, bigFile: tree.bigFile };
  });
  await stat(join(dir, 'hot.txt'));
  return {
    name,
    description: `synthetic: ${spec.layers} layers × ${spec.smallFilesPerLayer} small files + ${spec.bigFileBytes.length} large`,
    workload: readFilesWorkload('read the hot set (every 20th small file)', join(dir, 'hot.txt')),
    // Not in the hot set; written by writeSyntheticTree for every spec.
    smallFile: 'data/l0/d0/f1.txt',
    ...meta,
  };
}
