// The build-time access profile end to end: `clip publish --profile` and `clip profile` run the
// image's command in runc on a recording lazy mount (real registry, FUSE, runc), publish what
// it read as the artifact's second layer; a fresh worker's `clip mount` prefetches exactly
// that; trust checks cover the profile.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, open, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildLayout, startRegistry, type EntrySpec, type RunningRegistry } from '@clip/testkit';
import { ImageMountPool } from '../src/mount-pool.js';
import { BUSYBOX, cli, mountsUnder, startCli, tempDir, TEST_IMAGE_CONFIG } from './helpers.js';

const run = promisify(execFile);
const APPLETS = ['sh', 'cat', 'sleep', 'true', 'id'];
/** Deterministic bytes that do not compress away, so reads need real ranges. */
const noise = (size: number, seed: number) => {
  const bytes = new Uint8Array(size);
  let x = seed;
  for (let i = 0; i < size; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    bytes[i] = x >>> 24;
  }
  return bytes;
};
const A = new TextEncoder().encode('profiled file a\n');
const B = noise(300_000, 7);
const UNREAD = noise(2_000_000, 11);

let registry: RunningRegistry;
let work: string;
let layoutRef: string;

async function buildImage(dir: string) {
  const entries: EntrySpec[] = [
    { type: 'dir', path: 'bin' },
    { type: 'file', path: 'bin/busybox', mode: 0o755, content: new Uint8Array(await readFile(BUSYBOX)) },
    ...APPLETS.map((name): EntrySpec => ({ type: 'symlink', path: `bin/${name}`, target: 'busybox' })),
    { type: 'dir', path: 'etc' },
    { type: 'file', path: 'etc/passwd', content: 'root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n' },
    { type: 'file', path: 'etc/group', content: 'root:x:0:\napp:x:1000:\nextra:x:2000:app\n' },
    { type: 'dir', path: 'home/app', uid: 1000, gid: 1000 },
    { type: 'dir', path: 'work', uid: 1000, gid: 1000 },
    { type: 'dir', path: 'data' },
    { type: 'file', path: 'data/a.txt', content: A },
    { type: 'file', path: 'data/b.bin', content: B },
    { type: 'file', path: 'data/unread.bin', content: UNREAD },
    { type: 'dir', path: 'tmp', mode: 0o1777 },
  ];
  return buildLayout(dir, {
    tag: 'v1',
    layers: [{ compression: 'gzip', entries }],
    // The image's own command reads a.txt and b.bin, then exits.
    config: { ...TEST_IMAGE_CONFIG, Cmd: ['sh', '-c', 'cat /data/a.txt /data/b.bin > /dev/null'] },
  });
}

/** Path → listed ranges of a profile text. */
function parseProfile(text: string): Map<string, string> {
  return new Map(
    text
      .trim()
      .split('\n')
      .filter(Boolean)
      .map((line) => line.split('\t') as [string, string]),
  );
}

async function pull(ref: string, ...args: string[]) {
  const result = await cli(['pull-archive', ref, '--json', '--refresh', ...args]);
  if (result.code !== 0) throw new Error(`pull-archive failed: ${result.stderr}`);
  return JSON.parse(result.stdout) as { path: string; profile?: { digest: string; bytes: number; files: number; path: string } };
}

/** A fresh worker: own archive cache, mount with metrics printed at exit. */
async function mountAndRead(ref: string, extra: string[], read: (mnt: string) => Promise<void>) {
  const dir = await tempDir('profile-worker');
  const mnt = join(dir, 'mnt');
  await mkdir(mnt);
  const env = { CLIP_ARCHIVE_CACHE: join(dir, 'archives') };
  const mount = startCli(['mount', ref, mnt, ...extra], env);
  try {
    const waitFor = async (pattern: RegExp) => {
      const deadline = Date.now() + 120_000;
      while (!pattern.test(mount.output().stderr)) {
        if (mount.child.exitCode !== null || Date.now() > deadline)
          throw new Error(`mount never logged ${pattern}: ${mount.output().stderr}`);
        await new Promise((r) => setTimeout(r, 25));
      }
    };
    // With a profile, wait for its prefetch to finish before the workload reads.
    await waitFor(extra.includes('--no-prefetch') ? /msg="prefetch finished"|msg="serving reads"/ : /msg="prefetch finished"/);
    await read(mnt);
  } finally {
    mount.child.kill('SIGTERM');
    await mount.done;
    await run('umount', ['-l', mnt]).catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  }
  const result = await mount.done;
  const line = result.stderr.split('\n').find((l) => l.startsWith('{"metrics"'));
  return { stderr: result.stderr, metrics: (JSON.parse(line ?? '{}') as { metrics: Record<string, number> }).metrics };
}

beforeAll(async () => {
  registry = await startRegistry();
  work = await tempDir('profile');
  process.env['XDG_CACHE_HOME'] = join(work, 'xdg-cache');
  process.env['CLIP_ARCHIVE_CACHE'] = join(work, 'archives');
  layoutRef = (await buildImage(join(work, 'layout'))).ref;
});

afterAll(async () => {
  for (const mount of (await mountsUnder(work ?? '/nonexistent')).sort((a, b) => b.path.length - a.path.length))
    await run('umount', ['-l', mount.path]).catch(() => undefined);
  await registry?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

describe('clip publish --profile', () => {
  let ref: string;
  let profile: Map<string, string>;

  it("records the image's command and publishes the profile as a second artifact layer", async () => {
    ref = `${registry.host}/test/prof:v1`;
    const result = await cli(['publish', layoutRef, ref, '--profile', '--json', '--no-progress']);
    expect(result.code, result.stderr).toBe(0);
    const summary = JSON.parse(result.stdout) as { archive: { artifactDigest: string; profile: { digest: string; files: number } } };
    expect(summary.archive.profile.files).toBeGreaterThanOrEqual(3);
    // The artifact manifest: archive first, then the windows blob and the profile layer.
    const response = await fetch(`http://${registry.host}/v2/test/prof/manifests/${summary.archive.artifactDigest}`, {
      headers: { accept: 'application/vnd.oci.image.manifest.v1+json' },
    });
    const manifest = (await response.json()) as { layers: Array<{ mediaType: string; digest: string }> };
    expect(manifest.layers.map((l) => l.mediaType)).toEqual([
      'application/vnd.clip.archive.v2',
      'application/vnd.clip.windows.v1',
      'application/vnd.clip.profile.v1',
    ]);
    expect(manifest.layers[2]!.digest).toBe(summary.archive.profile.digest);

    const pulled = await pull(ref);
    expect(pulled.profile?.digest).toBe(summary.archive.profile.digest);
    profile = parseProfile(await readFile(pulled.profile!.path, 'utf8'));
    expect(profile.get('/data/a.txt')).toBe(`0-${A.length}`);
    expect(profile.get('/data/b.bin')).toBe(`0-${B.length}`);
    expect(profile.has('/bin/busybox')).toBe(true);
    expect(profile.has('/data/unread.bin')).toBe(false);
  }, 120_000);

  it('a fresh worker prefetches exactly the profiled files; contents are byte-for-byte', async () => {
    const { stderr, metrics } = await mountAndRead(ref, [], async (mnt) => {
      expect(new Uint8Array(await readFile(join(mnt, 'data/a.txt')))).toEqual(A);
      expect(new Uint8Array(await readFile(join(mnt, 'data/b.bin')))).toEqual(B);
    });
    expect(stderr).toMatch(new RegExp(`msg="applying the access profile" .*bytes=\\d+ files=${profile.size}`));
    expect(metrics['profileFiles']).toBe(profile.size);
    expect(metrics['prefetchedFiles']).toBe(profile.size);
    // Exactly the listed ranges were fetched ahead, nothing else.
    const listed = [...profile.values()].flatMap((ranges) => ranges.split(',').map((r) => r.split('-').map(Number) as [number, number]));
    expect(metrics['prefetchBytes']).toBe(listed.reduce((sum, [start, end]) => sum + end - start, 0));
    // Every prefetched byte of a.txt and b.bin was used; busybox and the passwd files were only partly read here.
    expect(metrics['prefetchUsedBytes']).toBeGreaterThanOrEqual(A.length + B.length);
    expect(metrics['prefetchUsedBytes']! + metrics['prefetchWastedBytes']!).toBe(metrics['prefetchBytes']);
  }, 180_000);

  it("clip run's image mount applies the profile; clip inspect shows it", async () => {
    const pool = new ImageMountPool({ stateDir: join(work, 'state') });
    const lease = await pool.acquire(ref, 'test:profile');
    try {
      const log = join(work, 'state', 'mounts', lease.imageKey, 'server.log');
      let text = '';
      for (let i = 0; i < 200 && !/msg="prefetch finished"/.test(text); i++) {
        await new Promise((r) => setTimeout(r, 25));
        text = await readFile(log, 'utf8').catch(() => '');
      }
      expect(text).toMatch(new RegExp(`msg="applying the access profile" .*files=${profile.size}`));
      expect(new Uint8Array(await readFile(join(lease.mountpoint, 'data/b.bin')))).toEqual(B);
    } finally {
      await lease.release();
    }
    const inspected = await cli(['inspect', ref, '--json']);
    expect(inspected.code, inspected.stderr).toBe(0);
    const report = JSON.parse(inspected.stdout) as { profile: { digest: string; files: number; listedBytes: number } };
    expect(report.profile.files).toBe(profile.size);
    expect(report.profile.listedBytes).toBeGreaterThanOrEqual(A.length + B.length);
    const text = await cli(['inspect', ref]);
    expect(text.stdout).toMatch(
      new RegExp(`^profile +${report.profile.digest} \\(.*, ${profile.size} files, .* of file data to prefetch\\)$`, 'm'),
    );
  }, 180_000);

  it('pull-archive -o keeps the profile next to the file; clip profile <file> writes it there', async () => {
    const file = join(work, 'app.clip');
    expect((await cli(['pull-archive', ref, '-o', file])).code).toBe(0);
    expect(parseProfile(await readFile(join(work, 'app.profile'), 'utf8'))).toEqual(profile);
    const recorded = await cli(['profile', file, '--json', '--', 'cat', '/data/a.txt']);
    expect(recorded.code, recorded.stderr).toBe(0);
    expect(JSON.parse(recorded.stdout)).toMatchObject({ archive: file, profile: join(work, 'app.profile') });
    const listed = parseProfile(await readFile(join(work, 'app.profile'), 'utf8'));
    expect(listed.get('/data/a.txt')).toBe(`0-${A.length}`);
    expect(listed.has('/data/b.bin')).toBe(false);
    const inspected = JSON.parse((await cli(['inspect', file, '--json'])).stdout) as { profile: { files: number } };
    expect(inspected.profile.files).toBe(listed.size);
  }, 180_000);

  it('--no-prefetch fetches nothing ahead', async () => {
    const { stderr, metrics } = await mountAndRead(ref, ['--no-prefetch'], async (mnt) => {
      expect(new Uint8Array(await readFile(join(mnt, 'data/a.txt')))).toEqual(A);
    });
    expect(stderr).not.toMatch(/applying the access profile/);
    expect(metrics['profileFiles']).toBe(0);
    expect(metrics['prefetchedFiles']).toBe(0);
    expect(metrics['prefetchBytes']).toBe(0);
  }, 180_000);

  it('places a checkpoint where a profiled read starts: a fresh worker fetches less for it; --no-profile-checkpoints keeps the spans', async () => {
    // 4 MiB spans: without the profile's checkpoint the read deep in unread.bin inflates from the layer's start.
    const command = ['--', '/bin/busybox', 'dd', 'if=/data/unread.bin', 'of=/dev/null', 'bs=1000', 'skip=1900', 'count=1'];
    const refs = { placed: `${registry.host}/test/prof-cp:v1`, plain: `${registry.host}/test/prof-cp-plain:v1` };
    for (const [ref, extra] of [
      [refs.placed, []],
      [refs.plain, ['--no-profile-checkpoints']],
    ] as const) {
      const result = await cli(['publish', layoutRef, ref, '--profile', '--span-size', '4MiB', '--no-progress', ...extra, ...command]);
      expect(result.code, result.stderr).toBe(0);
      if (extra.length === 0) expect(result.stderr).toMatch(/msg="checkpoints placed at the profile reads" layers=1 added=[1-9]/);
      else expect(result.stderr).not.toMatch(/checkpoints placed/);
    }
    const spans = async (ref: string) => {
      const inspected = await cli(['inspect', ref, '--json']);
      expect(inspected.code, inspected.stderr).toBe(0);
      return (JSON.parse(inspected.stdout) as { layers: Array<{ spans: number }> }).layers[0]!.spans;
    };
    expect(await spans(refs.placed)).toBeGreaterThan(await spans(refs.plain));
    const fetched: Record<string, number> = {};
    for (const [name, ref] of Object.entries(refs)) {
      // Only the demand read: no profile prefetch (which reads the same range ahead).
      const { metrics } = await mountAndRead(ref, ['--no-prefetch'], async (mnt) => {
        const file = await open(join(mnt, 'data/unread.bin'));
        try {
          const { buffer, bytesRead } = await file.read(new Uint8Array(1000), 0, 1000, 1_900_000);
          expect(bytesRead).toBe(1000);
          expect(buffer).toEqual(UNREAD.subarray(1_900_000, 1_901_000));
        } finally {
          await file.close();
        }
      });
      fetched[name] = metrics['fetchBytes']!;
    }
    // Without the checkpoint the read inflates from the layer's start: busybox, b.bin and 1.9 MB of unread.bin.
    expect(fetched['plain']! - fetched['placed']!, JSON.stringify(fetched)).toBeGreaterThan(1_500_000);
  }, 180_000);

  it('stops a command that never exits at --profile-seconds', async () => {
    const started = Date.now();
    const result = await cli([
      'publish',
      layoutRef,
      `${registry.host}/test/prof-server:v1`,
      '--profile',
      '--profile-seconds',
      '2',
      '--json',
      '--no-progress',
      '--',
      'sh',
      '-c',
      'cat /data/a.txt > /dev/null; exec sleep 1000',
    ]);
    expect(result.code, result.stderr).toBe(0);
    expect(Date.now() - started).toBeLessThan(60_000);
    expect(result.stderr).toMatch(/msg="profile command stopped at the time limit" seconds=2/);
    const pulled = await pull(`${registry.host}/test/prof-server:v1`);
    const listed = parseProfile(await readFile(pulled.profile!.path, 'utf8'));
    expect(listed.get('/data/a.txt')).toBe(`0-${A.length}`);
    expect(listed.has('/data/b.bin')).toBe(false);
  }, 120_000);
});

/** `pull-archive --list --json` of `ref` under the test's verify key: every candidate and its verdict. */
async function listSigned(ref: string) {
  const listed = await cli(['pull-archive', ref, '--list', '--json', '--verify-key', join(work, 'key.pub')]);
  return (
    JSON.parse(listed.stdout) as {
      candidates: Array<{ artifactDigest: string; usable: boolean; profileDigest?: string; reason?: string }>;
    }
  ).candidates;
}

/** Pushes a copy of artifact `digest` in test/later whose profile layer is another blob; adds it to the referrers tag. */
async function pushSwappedProfile(digest: string, subject: string): Promise<string> {
  const base = `http://${registry.host}/v2/test/later`;
  const manifestType = 'application/vnd.oci.image.manifest.v1+json';
  const manifest = (await (await fetch(`${base}/manifests/${digest}`, { headers: { accept: manifestType } })).json()) as {
    layers: Array<{ mediaType: string; digest: string; size: number }>;
  };
  const at = manifest.layers.findIndex((layer) => layer.mediaType === 'application/vnd.clip.profile.v1');
  expect(at).toBeGreaterThan(0);
  const evil = Buffer.from('/data/unread.bin\n');
  const evilDigest = `sha256:${createHash('sha256').update(evil).digest('hex')}`;
  const upload = await fetch(`${base}/blobs/uploads/`, { method: 'POST' });
  const location = new URL(upload.headers.get('location')!, `http://${registry.host}`);
  location.searchParams.set('digest', evilDigest);
  expect((await fetch(location, { method: 'PUT', body: evil, headers: { 'content-type': 'application/octet-stream' } })).status).toBe(201);
  manifest.layers[at] = { ...manifest.layers[at]!, digest: evilDigest, size: evil.length };
  const bytes = Buffer.from(JSON.stringify(manifest));
  const swapped = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
  expect(
    (await fetch(`${base}/manifests/${swapped}`, { method: 'PUT', body: bytes, headers: { 'content-type': manifestType } })).status,
  ).toBe(201);
  const tag = subject.replace(':', '-');
  const indexType = 'application/vnd.oci.image.index.v1+json';
  const index = (await (await fetch(`${base}/manifests/${tag}`, { headers: { accept: indexType } })).json()) as { manifests: unknown[] };
  index.manifests.push({ mediaType: manifestType, digest: swapped, size: bytes.length, artifactType: 'application/vnd.clip.archive.v2' });
  const put = await fetch(`${base}/manifests/${tag}`, {
    method: 'PUT',
    body: JSON.stringify(index),
    headers: { 'content-type': indexType },
  });
  expect(put.status).toBe(201);
  return swapped;
}

describe('clip publish --profile, refused up front', () => {
  it('a missing OCI runtime fails before anything is pushed; a command without --profile is a usage error', async () => {
    const ref = `${registry.host}/test/no-runtime:v1`;
    const result = await cli(['publish', layoutRef, ref, '--profile', '--runtime', '/nonexistent/runc', '--no-progress']);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/OCI runtime \/nonexistent\/runc not found .*CLIP_E_OCI_RUNTIME/);
    expect((await fetch(`http://${registry.host}/v2/test/no-runtime/tags/list`)).status).toBe(404);
    const usage = await cli(['publish', layoutRef, ref, '--no-progress', '--', 'true']);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toMatch(/a command \(true\) is only taken with --profile/);
  });
});

describe('clip profile <ref>', () => {
  it('adds a profile to an existing publish; it verifies under the trust checks; a tampered profile is refused', async () => {
    const ref = `${registry.host}/test/later:v1`;
    await writeFile(join(work, 'key.pem'), (await run('openssl', ['genpkey', '-algorithm', 'ed25519'])).stdout);
    await writeFile(join(work, 'key.pub'), (await run('openssl', ['pkey', '-in', join(work, 'key.pem'), '-pubout'])).stdout);
    const published = await cli(['publish', layoutRef, ref, '--no-progress', '--sign-key', join(work, 'key.pem')]);
    expect(published.code, published.stderr).toBe(0);
    expect((await pull(ref)).profile).toBeUndefined();

    const profiled = await cli(['profile', ref, '--json', '--sign-key', join(work, 'key.pem'), '--', 'cat', '/data/b.bin']);
    expect(profiled.code, profiled.stderr).toBe(0);
    const summary = JSON.parse(profiled.stdout) as { profile: { digest: string }; artifactDigest: string; manifestDigest: string };
    // The new artifact keeps the windows blob already in the repository as a layer (kept from GC).
    const republished = (await (
      await fetch(`http://${registry.host}/v2/test/later/manifests/${summary.artifactDigest}`, {
        headers: { accept: 'application/vnd.oci.image.manifest.v1+json' },
      })
    ).json()) as { layers: Array<{ mediaType: string }> };
    expect(republished.layers.map((l) => l.mediaType)).toEqual([
      'application/vnd.clip.archive.v2',
      'application/vnd.clip.windows.v1',
      'application/vnd.clip.profile.v1',
    ]);
    // Bound by the new index at the tag, and signed: both trust paths accept it.
    const bound = await pull(ref);
    expect(bound.profile?.digest).toBe(summary.profile.digest);
    expect(parseProfile(await readFile(bound.profile!.path, 'utf8')).get('/data/b.bin')).toBe(`0-${B.length}`);
    // By manifest digest with --verify-key: the new artifact (archive + profile) is signed and usable.
    const candidates = await listSigned(`${registry.host}/test/later@${summary.manifestDigest}`);
    expect(candidates.find((c) => c.artifactDigest === summary.artifactDigest)).toMatchObject({
      usable: true,
      profileDigest: summary.profile.digest,
    });

    // A referrer that keeps the signed annotations but swaps the profile layer: its profile signature fails.
    const swapped = await pushSwappedProfile(summary.artifactDigest, summary.manifestDigest);
    const report = (await listSigned(`${registry.host}/test/later@${summary.manifestDigest}`)).find((c) => c.artifactDigest === swapped);
    expect(report?.usable).toBe(false);
    expect(report?.reason).toMatch(/the profile signature does not verify/);

    // Change the profile blob in the registry's storage after the binding.
    const hex = summary.profile.digest.replace('sha256:', '');
    const blob = join(registry.storageDir, 'docker/registry/v2/blobs/sha256', hex.slice(0, 2), hex, 'data');
    const bytes = await readFile(blob);
    bytes[0] = bytes[0]! ^ 1;
    await writeFile(blob, bytes);
    const refused = await cli(['pull-archive', ref, '--refresh', '--cache-dir', join(work, 'fresh-cache')]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(
      new RegExp(
        `profile blob ${summary.profile.digest} .*does not match its digest \\(changed after publishing\\?\\); refused.*CLIP_E_DIGEST_MISMATCH`,
      ),
    );
  }, 180_000);
});
