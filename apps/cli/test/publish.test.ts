// `clip publish` / `clip pull-archive` / `clip mount <reference>` end to end: a real registry
// behind a logging proxy (only the publish traffic goes through it), the built cli in child
// processes, a "fresh worker" (no layout, empty cache) mounting by reference and compared
// with umoci's unpacked tree.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  buildFixture,
  type BuiltLayout,
  diffTrees,
  type FaultProxy,
  startFaultProxy,
  readTree,
  type RunningRegistry,
  skopeoInspect,
  skopeoInspectRaw,
  startRegistry,
  type Tree,
  umociUnpack,
} from '@clip/testkit';
import { CLI, removeAll, runCli, startMount, tempDir, type RunningMount } from './mount-harness.js';
import type { PublishSummary } from '@clip/indexer';

const ARTIFACT_TYPE = 'application/vnd.clip.archive.v2';
const sha256 = (bytes: Uint8Array) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

let work: string;
let registry: RunningRegistry;
let proxy: FaultProxy;
const mounts: RunningMount[] = [];

/** `clip publish --json` prints the pipeline's summary as is. */
type PublishJson = PublishSummary;

/** A fresh worker's environment: its own archive cache. */
function useCache(dir: string): void {
  delete process.env['CLIP_ARCHIVE_CACHE'];
  process.env['XDG_CACHE_HOME'] = dir;
}

/** Registry state seen directly (not through the proxy). */
async function manifestStatus(repo: string, reference: string): Promise<number> {
  const response = await fetch(`${registry.url}/v2/${repo}/manifests/${reference}`, {
    method: 'HEAD',
    headers: { accept: 'application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json' },
  });
  return response.status;
}
async function blobExists(repo: string, digest: string): Promise<boolean> {
  return (await fetch(`${registry.url}/v2/${repo}/blobs/${digest}`, { method: 'HEAD' })).status === 200;
}

/** umoci's tree of a layout image, without the mtimes of directories the layers only imply. */
async function expectedTree(layout: BuiltLayout, bundle: string): Promise<Tree> {
  const tree = await readTree(await umociUnpack(layout.umociRef, bundle));
  for (const [path, node] of layout.expected) {
    const unpacked = tree.get(path);
    if (node.mtime === undefined && unpacked) delete unpacked.mtime;
  }
  return tree;
}

beforeAll(async () => {
  work = await tempDir('publish-test');
  registry = await startRegistry();
  proxy = await startFaultProxy({ upstream: { hostname: '127.0.0.1', port: registry.port } });
});

afterEach(async () => {
  proxy.throttle(undefined);
  proxy.failWhen(undefined);
  for (const mount of mounts.splice(0)) {
    await mount.stop();
    await removeAll(mount.mountpoint);
  }
});

afterAll(async () => {
  await proxy?.stop();
  await registry?.stop();
  await removeAll(work);
});

describe('clip publish', () => {
  it('indexes locally while pushing, publishes the archive as a referrer, and a fresh worker mounts the image by reference', async () => {
    const layout = await buildFixture('layers', join(work, 'layers-layout'));
    const expected = await expectedTree(layout, join(work, 'layers-bundle'));
    const repo = 'pub/layers';
    const target = `${proxy.host}/${repo}:v1`;
    proxy.log.length = 0;

    const published = await runCli(['publish', layout.ref, target, '--json', '--no-progress', '--index-concurrency', '1'], {
      timeoutMs: 120_000,
    });
    expect(published.stderr).not.toMatch(/clip: (internal )?error/);
    expect(published.code).toBe(0);
    const summary = JSON.parse(published.stdout.toString()) as PublishJson;
    const blobDigests = [layout.image.configDigest, ...layout.image.layers.map((l) => l.digest)];
    const layerBytes = layout.image.layers.reduce((sum, l) => sum + l.size, 0);
    // The tag now holds the index that binds image and archive (docs/security.md).
    expect(summary.imageDigest).not.toBe(layout.topDigest);
    expect(summary).toMatchObject({
      imageDigest: summary.archive.boundIndexDigest,
      manifestDigest: layout.image.manifestDigest,
      blobs: { uploaded: blobDigests.length, skipped: 0, mounted: 0 },
      bytesIndexed: layerBytes,
      layerBytes,
      indexNetworkBytes: 0,
      archive: { fallbackTag: `sha256-${layout.image.manifestDigest.slice('sha256:'.length)}` },
    });
    expect(summary.bytesPushed).toBeGreaterThan(layerBytes);
    for (const value of Object.values(summary.stages)) expect(value).toBeGreaterThanOrEqual(0);
    expect(summary.pushRateBytesPerSecond).toBeGreaterThan(0);
    expect(summary.estimatedRegistryIndexSeconds).toBeGreaterThanOrEqual(summary.stages.indexSeconds);
    // The indexing half made no connection: the layout was read locally (0 network bytes), and
    // the only traffic — all through the proxy — is the push's: no layer was ever downloaded.
    expect(published.stderr).toMatch(/indexing from local OCI layout with remote storage reference/);
    expect(proxy.log.filter((r) => r.method === 'GET' && r.url.includes('/blobs/'))).toEqual([]);
    expect(proxy.log.filter((r) => !r.url.startsWith(`/v2/${repo}/`) && r.url !== '/v2/')).toEqual([]);

    // skopeo sees the bound index at the tag and, picking the platform, the layout's layers.
    const direct = `docker://${registry.host}/${repo}:v1`;
    expect(sha256(await skopeoInspectRaw(direct))).toBe(summary.imageDigest);
    expect((await skopeoInspect(direct)).Layers).toEqual(layout.image.layers.map((l) => l.digest));
    // The fallback tag lists the archive artifact; the artifact refers to the image manifest.
    const index = JSON.parse((await skopeoInspectRaw(`docker://${registry.host}/${repo}:${summary.archive.fallbackTag}`)).toString()) as {
      manifests: Array<{ digest: string; artifactType?: string }>;
    };
    expect(index.manifests).toEqual([expect.objectContaining({ digest: summary.archive.artifactDigest, artifactType: ARTIFACT_TYPE })]);
    const artifact = JSON.parse(
      (await skopeoInspectRaw(`docker://${registry.host}/${repo}@${summary.archive.artifactDigest}`)).toString(),
    ) as {
      artifactType: string;
      config: { mediaType: string; size: number };
      layers: Array<{ mediaType: string; digest: string; size: number }>;
      subject: { digest: string };
    };
    expect(artifact).toMatchObject({
      artifactType: ARTIFACT_TYPE,
      config: { mediaType: 'application/vnd.oci.empty.v1+json', size: 2 },
      layers: [{ mediaType: ARTIFACT_TYPE, digest: summary.archive.blobDigest, size: summary.archive.bytes }],
      subject: { digest: layout.image.manifestDigest },
    });

    // Fresh worker: the layout is gone, the cache is empty; mount by reference.
    await rm(layout.dir, { recursive: true, force: true });
    const cache = await tempDir('fresh-cache');
    useCache(cache);
    const mountpoint = await tempDir('mnt');
    const mount = await startMount(target, mountpoint);
    mounts.push(mount);
    expect(mount.stderr()).toMatch(/msg="downloaded archive".*trust=bound-index via=index/);
    expect(diffTrees(expected, await readTree(mount.mountpoint))).toEqual([]);
    const cached = await readFile(
      join(cache, 'clip', 'archives', encodeURIComponent(proxy.host), repo, `${summary.archive.blobDigest.replace(':', '-')}.clip`),
    );
    expect(sha256(cached)).toBe(summary.archive.blobDigest);

    // pull-archive: from the cache now, bytes identical to the published blob.
    const out = join(work, 'pulled.clip');
    const pulled = await runCli(['pull-archive', target, '-o', out]);
    expect(pulled.code).toBe(0);
    expect(pulled.stdout.toString()).toMatch(/^cached archive/);
    expect(sha256(await readFile(out))).toBe(summary.archive.blobDigest);

    // clip index of the published image says so; --reuse takes the archive instead of indexing.
    const said = await runCli(['index', target, '-o', join(work, 'reindexed.clip'), '--no-progress']);
    expect(said.code).toBe(0);
    expect(said.stderr).toMatch(/image already has a published archive/);
    proxy.log.length = 0;
    const reused = await runCli(['index', target, '-o', join(work, 'reused.clip'), '--reuse', '--no-progress']);
    expect(reused.code).toBe(0);
    expect(reused.stdout.toString()).toMatch(/^reused the published archive/);
    expect(sha256(await readFile(join(work, 'reused.clip')))).toBe(summary.archive.blobDigest);
    // No layer was read: only manifests, the config and the archive blob.
    expect(proxy.log.filter((r) => r.method === 'GET' && layout.image.layers.some((l) => r.url.endsWith(l.digest)))).toEqual([]);
  });

  it('leaves no archive after an interrupted push, and a re-run completes without re-uploading finished blobs', async () => {
    const layout = await buildFixture('large', join(work, 'large-layout'));
    const repo = 'pub/large';
    const target = `${proxy.host}/${repo}:v1`;
    const blobs = new Map<string, number>([
      [layout.image.configDigest, -1],
      ...layout.image.layers.map((l) => [l.digest, l.size] as [string, number]),
    ]);
    const biggest = [...layout.image.layers].sort((a, b) => b.size - a.size)[0]!;
    proxy.log.length = 0;
    proxy.throttle(1024 * 1024);

    const child = spawn(process.execPath, [CLI, 'publish', layout.ref, target, '--index-concurrency', '1'], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    try {
      // Interrupt once some blob is done and the biggest layer is part-way up.
      const deadline = Date.now() + 60_000;
      const sentOfBiggest = () =>
        proxy.log
          .filter((r) => r.method === 'PUT' && r.url.includes(`digest=${encodeURIComponent(biggest.digest)}`))
          .reduce((s, r) => s + r.bodyBytes, 0);
      while (!(/push: \[\d+\/\d+\] uploaded/.test(stderr) && sentOfBiggest() > 512 * 1024)) {
        if (Date.now() > deadline || child.exitCode !== null) throw new Error(`publish did not reach the upload in time:\n${stderr}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      expect(sentOfBiggest()).toBeLessThan(biggest.size);
      child.kill('SIGKILL');
      await exited;
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    }
    proxy.throttle(undefined);

    // Nothing of the archive is in the registry, the image tag is not either.
    const fallbackTag = `sha256-${layout.image.manifestDigest.slice('sha256:'.length)}`;
    expect(await manifestStatus(repo, fallbackTag)).toBe(404);
    expect(await manifestStatus(repo, 'v1')).toBe(404);
    const present = new Set<string>();
    for (const digest of blobs.keys()) if (await blobExists(repo, digest)) present.add(digest);
    expect(present.size).toBeGreaterThan(0);
    expect(present.has(biggest.digest)).toBe(false);

    proxy.log.length = 0;
    const rerun = await runCli(['publish', layout.ref, target, '--json', '--no-progress', '--index-concurrency', '1'], {
      timeoutMs: 120_000,
    });
    expect(rerun.stderr).not.toMatch(/clip: (internal )?error/);
    expect(rerun.code).toBe(0);
    const summary = JSON.parse(rerun.stdout.toString()) as PublishJson;
    expect(summary.blobs).toEqual({ uploaded: blobs.size - present.size, skipped: present.size, mounted: 0 });
    // Blobs uploaded before the interruption were only HEADed, never sent again.
    for (const digest of present) {
      expect(proxy.log.filter((r) => r.method !== 'HEAD' && r.url.includes(encodeURIComponent(digest)))).toEqual([]);
    }
    expect(await manifestStatus(repo, fallbackTag)).toBe(200);
    const pulled = await runCli(['pull-archive', target, '--cache-dir', await tempDir('cache-large'), '--json']);
    expect(pulled.code).toBe(0);
    expect(JSON.parse(pulled.stdout.toString())).toMatchObject({
      manifestDigest: layout.image.manifestDigest,
      cached: false,
      via: 'index',
    });
  });

  it('fails cleanly on a failed image push or a stopped registry, publishing no archive', async () => {
    const layout = await buildFixture('basic', join(work, 'basic-layout'));
    const repo = 'pub/fail';
    const archive = join(work, 'fail.clip');

    // The registry refuses the image manifest: no artifact, no archive blob, no referrers tag.
    proxy.failWhen((method, url) => method === 'PUT' && url.startsWith(`/v2/${repo}/manifests/`));
    const failed = await runCli(['publish', layout.ref, `${proxy.host}/${repo}:v1`, '-o', archive, '--no-progress'], {
      timeoutMs: 120_000,
    });
    expect(failed.code).toBe(1);
    expect(failed.stderr).toMatch(/image push failed; no archive was published/);
    expect(failed.stderr).toMatch(/clip: error: .*PUT manifest.*HTTP 500.*\[CLIP_E_REGISTRY\]/);
    const blobDigest = sha256(await readFile(archive));
    expect(await blobExists(repo, blobDigest)).toBe(false);
    expect(await manifestStatus(repo, `sha256-${layout.image.manifestDigest.slice('sha256:'.length)}`)).toBe(404);
    proxy.failWhen(undefined);

    // A registry that is not there: a clear error naming it.
    const gone = await startRegistry();
    const host = gone.host;
    await gone.stop();
    const unreachable = await runCli(['publish', layout.ref, `${host}/${repo}:v1`, '--no-progress'], { timeoutMs: 120_000 });
    expect(unreachable.code).toBe(1);
    expect(unreachable.stderr).toMatch(
      new RegExp(`clip: error: registry ${host.replace(/\./g, '\\.')} repository ${repo}: .*ECONNREFUSED.*\\[CLIP_E_REGISTRY\\]`),
    );
    expect(unreachable.stderr).not.toMatch(/archive published/);

    // pull-archive of an image without a published archive says so.
    const none = await runCli(['push', layout.ref, `${registry.host}/pub/plain:v1`]);
    expect(none.code).toBe(0);
    const missing = await runCli(['pull-archive', `${registry.host}/pub/plain:v1`, '--cache-dir', await tempDir('c')]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/no clip archive is published for .*\[CLIP_E_ARCHIVE_NOT_PUBLISHED\]/);
    expect((await stat(archive)).size).toBeGreaterThan(0);
  });
});
