import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import tar from 'tar-stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildFixture, buildLayout, FIXTURE_NAMES, FIXTURES, type BuiltLayout } from '../src/fixtures.js';
import { readTree } from '../src/read-tree.js';
import { startRegistry, type RunningRegistry } from '../src/registry.js';
import { skopeoCopy, skopeoInspect, skopeoInspectRaw, umociUnpack } from '../src/tools.js';
import { diffTrees } from '../src/tree.js';

const sha256 = (data: Uint8Array) => `sha256:${createHash('sha256').update(data).digest('hex')}`;

let work: string;
const built = new Map<string, BuiltLayout>();

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'clip-testkit-fixtures-'));
  for (const name of FIXTURE_NAMES) built.set(name, await buildFixture(name, join(work, 'layouts', name)));
});

afterAll(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

function fixture(name: string): BuiltLayout {
  const layout = built.get(name);
  if (!layout) throw new Error(`fixture ${name} not built`);
  return layout;
}

describe('fixture layouts', () => {
  it('are deterministic: rebuilding gives the same digests', async () => {
    for (const name of FIXTURE_NAMES) {
      const again = await buildFixture(name, join(work, 'again', name));
      expect(again.topDigest, name).toBe(fixture(name).topDigest);
    }
  });

  it('write a valid layout: index.json tags, blobs matching their digests, diff_ids matching the tars', async () => {
    const layout = fixture('layers');
    const index = JSON.parse(await readFile(join(layout.dir, 'index.json'), 'utf8')) as {
      manifests: Array<{ digest: string; annotations?: Record<string, string> }>;
    };
    expect(index.manifests.map((m) => m.annotations?.['org.opencontainers.image.ref.name'])).toEqual(['layers']);
    const manifest = JSON.parse(await readFile(join(layout.dir, 'blobs/sha256', layout.topDigest.slice(7)), 'utf8')) as {
      config: { digest: string };
      layers: Array<{ mediaType: string; digest: string; size: number }>;
    };
    expect(manifest.layers.map((l) => l.mediaType)).toEqual([
      'application/vnd.oci.image.layer.v1.tar+gzip',
      'application/vnd.oci.image.layer.v1.tar',
      'application/vnd.oci.image.layer.v1.tar+zstd',
    ]);
    const config = JSON.parse(await readFile(join(layout.dir, 'blobs/sha256', manifest.config.digest.slice(7)), 'utf8')) as {
      rootfs: { diff_ids: string[] };
    };
    expect(config.rootfs.diff_ids).toEqual(layout.image.layers.map((l) => l.diffId));
    for (const layer of layout.image.layers) {
      const blob = await readFile(layer.blobPath);
      expect(sha256(blob)).toBe(layer.digest);
      expect(blob.length).toBe(layer.size);
    }
  });

  it('writes tars that tar-stream reads back: long names, binary xattrs, devices', async () => {
    const layer = fixture('special').image.layers[0];
    if (!layer) throw new Error('no layer');
    const headers = new Map<string, tar.Header>();
    const extract = tar.extract();
    const done = new Promise<void>((resolve, reject) => {
      extract.on('entry', (header, stream, next) => {
        headers.set(header.name, header);
        stream.on('end', next);
        stream.resume();
      });
      extract.on('finish', resolve);
      extract.on('error', reject);
    });
    extract.end(gunzipSync(await readFile(layer.blobPath)));
    await done;
    const long = [...headers.keys()].find((name) => name.endsWith(`${'f'.repeat(120)}.txt`));
    expect(long?.length).toBeGreaterThan(200);
    expect(headers.get('./dev/tty-big-minor')).toMatchObject({ type: 'character-device', devmajor: 4, devminor: 300 });
    expect(headers.get('./home/user/big-ids')?.pax as unknown).toMatchObject({ uid: '3000000', gid: '2500000' });
    const pax = headers.get('./usr/bin/tagged')?.pax as Record<string, string> | undefined;
    expect(pax?.['SCHILY.xattr.user.comment']).toBe('hello xattr');
  });

  it('record a multi-platform image as a nested index plus one tag per platform', async () => {
    const layout = fixture('multiarch');
    expect(layout.topMediaType).toBe('application/vnd.oci.image.index.v1+json');
    expect(layout.images.map((i) => `${i.platform.architecture}:${i.tag}`)).toEqual([
      'amd64:multi-linux-amd64',
      'arm64:multi-linux-arm64-v8',
    ]);
    // The shared base layer is one blob.
    expect(layout.images[0]?.layers[0]?.digest).toBe(layout.images[1]?.layers[0]?.digest);
    expect(layout.images[0]?.expected.get('/etc/arch')?.sha256).not.toBe(layout.images[1]?.expected.get('/etc/arch')?.sha256);
  });
});

describe("umoci's unpacked tree equals the computed expectation", () => {
  // umoci (as root, on ext4/tmpfs) restores everything the expectation describes: owners,
  // setuid/setgid/sticky, xattrs incl. security.capability, devices, fifos, directory and
  // symlink mtimes. Only directories created implicitly have no known mtime (unpack time),
  // which diffTrees skips by design. zstd layers are converted to gzip first (umoci 0.4.7).
  for (const name of FIXTURE_NAMES) {
    it(name, async () => {
      for (const image of fixture(name).images) {
        const rootfs = await umociUnpack(image.umociRef, join(work, 'bundles', image.tag));
        try {
          expect(diffTrees(image.expected, await readTree(rootfs)), `${name} ${image.tag}`).toEqual([]);
        } finally {
          await rm(join(work, 'bundles', image.tag), { recursive: true, force: true });
        }
      }
    });
  }

  it('diffTrees reports real differences precisely', async () => {
    const layout = await buildLayout(join(work, 'mutated'), {
      tag: 'm',
      layers: [
        {
          compression: 'none',
          entries: [
            { type: 'file', path: 'a', content: 'one' },
            { type: 'file', path: 'b', content: 'two', mode: 0o600 },
          ],
        },
      ],
    });
    const expected = structuredClone(layout.expected);
    const a = expected.get('/a');
    const b = expected.get('/b');
    if (!a || !b) throw new Error('missing nodes');
    a.sha256 = 'ff';
    b.mode = 0o4755;
    expected.set('/c', { ...a });
    const rootfs = await umociUnpack(layout.umociRef, join(work, 'bundles', 'mutated'));
    expect(diffTrees(expected, await readTree(rootfs))).toEqual([
      expect.stringMatching(/^\/a: sha256 expected "ff", got "[0-9a-f]{64}"$/),
      '/b: mode expected 0o4755, got 0o600',
      '/c: missing (expected file)',
    ]);
  });
});

describe('fixtures survive a push to a real registry and a pull back', () => {
  let registry: RunningRegistry;
  beforeAll(async () => {
    registry = await startRegistry();
  });
  afterAll(async () => {
    await registry?.stop();
  });

  for (const name of FIXTURE_NAMES) {
    it(name, async () => {
      const layout = fixture(name);
      const remote = `docker://${registry.host}/fixtures/${name}:${layout.tag}`;
      const multi = layout.images.length > 1;
      await skopeoCopy(layout.ref, remote, { all: multi });

      const raw = await skopeoInspectRaw(remote);
      expect(sha256(raw)).toBe(layout.topDigest);
      const summary = await skopeoInspect(remote);
      expect(summary.Layers).toEqual(layout.image.layers.map((l) => l.digest));

      const back = join(work, 'pulled', name);
      await skopeoCopy(remote, `oci:${back}:${layout.tag}`, { all: multi });
      expect(sha256(await skopeoInspectRaw(`oci:${back}:${layout.tag}`))).toBe(layout.topDigest);
      for (const image of layout.images) {
        for (const layer of image.layers) {
          expect(sha256(await readFile(join(back, 'blobs/sha256', layer.digest.slice(7)))), layer.digest).toBe(layer.digest);
        }
      }
    });
  }

  it('covers every named fixture', () => {
    expect(Object.keys(FIXTURES).sort()).toEqual([...FIXTURE_NAMES].sort());
  });
});
