// A realistic test image: Debian (mmdebstrap, from the machine's apt sources) as an OCI
// layout with two gzip layers made by umoci: the minbase system, then what installing the
// requested packages changed (files added/changed, whiteouts for removed ones). Built once
// per package list and cached under ${XDG_CACHE_HOME:-~/.cache}/clip-testkit/; a lock
// directory keeps concurrent test processes from building it twice.
import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { Digest } from '@clip/shared';
import { runTool } from './tools.js';

export interface DebianImageOptions {
  /** Packages installed on top of the base (second layer). Default `['python3']`. */
  packages?: string[];
  /** Debian suite; default `bookworm`. */
  suite?: string;
  /** mmdebstrap variant of the base layer; default `minbase`. */
  variant?: 'minbase' | 'apt' | 'essential';
  /** Cache root; default `${XDG_CACHE_HOME:-~/.cache}/clip-testkit`. */
  cacheDir?: string;
  /** Progress lines (building takes a minute or two the first time). */
  onProgress?: (message: string) => void;
}

export interface DebianImage {
  /** OCI layout directory (in the cache: do not modify). */
  layoutDir: string;
  /** Tag of the full image (base + packages layer). */
  tag: string;
  /** `oci:<layoutDir>:<tag>`. */
  ref: string;
  /** `<layoutDir>:<tag>` for umoci. */
  umociRef: string;
  /** Tag of the base-only image (one layer). */
  baseTag: string;
  manifestDigest: Digest;
  /** Layer blobs bottom first (base, then the packages layer; only the base when no packages). */
  layers: Array<{ digest: Digest; size: number; mediaType: string }>;
  packages: string[];
  /** True when this call found it in the cache. */
  cached: boolean;
}

const RECIPE_VERSION = 1; // bump when the build recipe changes, so caches rebuild
const TAG = 'latest';
const BASE_TAG = 'base';

export function testkitCacheDir(): string {
  return join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'clip-testkit');
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** mkdir-based lock: atomic everywhere; a lock left by a dead process is taken over. */
async function withLock<T>(lockDir: string, onWait: () => void, body: () => Promise<T>): Promise<T> {
  let announced = false;
  for (;;) {
    try {
      await mkdir(lockDir);
      await writeFile(join(lockDir, 'pid'), String(process.pid));
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const owner = Number(await readFile(join(lockDir, 'pid'), 'utf8').catch(() => ''));
      if (owner > 0 && !isAlive(owner)) {
        await rm(lockDir, { recursive: true, force: true });
        continue;
      }
      if (!owner) {
        // Just created by someone who has not written the pid yet, or left empty by a crash.
        const age = Date.now() - (await stat(lockDir).catch(() => ({ mtimeMs: Date.now() }))).mtimeMs;
        if (age > 30_000) await rm(lockDir, { recursive: true, force: true });
      }
      if (!announced) {
        onWait();
        announced = true;
      }
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  }
  try {
    return await body();
  } finally {
    await rm(lockDir, { recursive: true, force: true });
  }
}

interface IndexJson {
  manifests: Array<{ digest: Digest; annotations?: Record<string, string> }>;
}

async function describe(layoutDir: string, packages: string[], cached: boolean): Promise<DebianImage> {
  const index = JSON.parse(await readFile(join(layoutDir, 'index.json'), 'utf8')) as IndexJson;
  const top = index.manifests.find((m) => m.annotations?.['org.opencontainers.image.ref.name'] === TAG);
  if (!top) throw new Error(`${layoutDir}: no ${TAG} tag`);
  const manifest = JSON.parse(await readFile(join(layoutDir, 'blobs/sha256', top.digest.slice(7)), 'utf8')) as {
    layers: Array<{ digest: Digest; size: number; mediaType: string }>;
  };
  return {
    layoutDir,
    tag: TAG,
    ref: `oci:${layoutDir}:${TAG}`,
    umociRef: `${layoutDir}:${TAG}`,
    baseTag: BASE_TAG,
    manifestDigest: top.digest,
    layers: manifest.layers.map(({ digest, size, mediaType }) => ({ digest, size, mediaType })),
    packages,
    cached,
  };
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

/** Empties a directory without removing it (umoci's bundle keeps the rootfs dir itself). */
async function emptyDir(dir: string): Promise<void> {
  await runTool('find', [dir, '-mindepth', '1', '-maxdepth', '1', '-exec', 'rm', '-rf', '{}', '+']);
}

async function extractTar(tarPath: string, dir: string): Promise<void> {
  await runTool('tar', ['--xattrs', '--xattrs-include=*', '--numeric-owner', '-xpf', tarPath, '-C', dir]);
}

async function build(work: string, suite: string, variant: string, packages: string[], log: (m: string) => void) {
  await rm(work, { recursive: true, force: true });
  await mkdir(work, { recursive: true });
  const layout = join(work, 'layout');
  const bundle = join(work, 'bundle');
  const baseTar = join(work, 'base.tar');
  const fullTar = join(work, 'full.tar');

  let started = Date.now();
  log(`mmdebstrap ${suite} (${variant})`);
  await runTool('mmdebstrap', ['--quiet', `--variant=${variant}`, '--format=tar', suite, baseTar]);
  log(`  base done in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  if (packages.length > 0) {
    started = Date.now();
    log(`mmdebstrap ${suite} (${variant}) + ${packages.join(',')}`);
    await runTool('mmdebstrap', ['--quiet', `--variant=${variant}`, `--include=${packages.join(',')}`, '--format=tar', suite, fullTar]);
    log(`  full done in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  }

  started = Date.now();
  log('umoci: base layer');
  await runTool('umoci', ['init', '--layout', layout]);
  await runTool('umoci', ['new', '--image', `${layout}:${BASE_TAG}`]);
  await runTool('umoci', ['unpack', '--image', `${layout}:${BASE_TAG}`, bundle]);
  const rootfs = join(bundle, 'rootfs');
  await extractTar(baseTar, rootfs);
  await rm(baseTar);
  await runTool('umoci', ['repack', '--refresh-bundle', '--image', `${layout}:${BASE_TAG}`, bundle]);
  await runTool('umoci', ['config', '--image', `${layout}:${BASE_TAG}`, '--config.cmd=/bin/sh']);
  if (packages.length > 0) {
    log('umoci: packages layer');
    await emptyDir(rootfs);
    await extractTar(fullTar, rootfs);
    await rm(fullTar);
  }
  // With no packages nothing changed: the second tag is the one-layer base image again.
  await runTool('umoci', ['repack', '--image', `${layout}:${TAG}`, bundle]);
  const cmd = packages.includes('python3') ? '/usr/bin/python3' : '/bin/sh';
  await runTool('umoci', ['config', '--image', `${layout}:${TAG}`, `--config.cmd=${cmd}`]);
  await runTool('umoci', ['gc', '--layout', layout]);
  await rm(bundle, { recursive: true, force: true });
  log(`  layers done in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  return layout;
}

/**
 * Builds (or finds in the cache) a Debian image with `packages` installed as a second layer.
 * Needs root (mmdebstrap root mode, umoci restoring owners) and the machine's apt sources.
 */
export async function buildDebianImage(options: DebianImageOptions = {}): Promise<DebianImage> {
  const packages = [...new Set(options.packages ?? ['python3'])].sort();
  const suite = options.suite ?? 'bookworm';
  const variant = options.variant ?? 'minbase';
  const log = options.onProgress ?? (() => {});
  const key = createHash('sha256').update(JSON.stringify({ RECIPE_VERSION, suite, variant, packages })).digest('hex').slice(0, 16);
  const root = options.cacheDir ?? testkitCacheDir();
  const name = `debian-${suite}-${variant}-${packages.join('_').slice(0, 40) || 'base'}-${key}`;
  const final = join(root, name);
  if (await exists(join(final, 'index.json'))) return describe(final, packages, true);

  await mkdir(root, { recursive: true });
  return withLock(
    join(root, `${name}.lock`),
    () => log(`waiting for another process building ${name}`),
    async () => {
      if (await exists(join(final, 'index.json'))) return describe(final, packages, true);
      // Builds interrupted earlier (killed test runs) leave their work directories behind.
      for (const entry of await readdir(root)) {
        if (entry.startsWith(`${name}.build-`)) await rm(join(root, entry), { recursive: true, force: true });
      }
      const work = join(root, `${name}.build-${process.pid}`);
      try {
        const layout = await build(work, suite, variant, packages, log);
        await rm(final, { recursive: true, force: true });
        await rename(layout, final); // atomic: readers see a complete layout or none
      } finally {
        await rm(work, { recursive: true, force: true });
      }
      return describe(final, packages, false);
    },
  );
}
