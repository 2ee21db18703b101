// The pure parts: label parsing, List filters, chain IDs, reference pinning, and the
// metadata store's durability (reopened from disk) and failure atomicity.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { chainIds, fallbackReasonOf } from '../src/decision.js';
import { SnapshotArgumentError, SnapshotExistsError } from '../src/errors.js';
import { parseFilters } from '../src/filters.js';
import { parseLayerLabels } from '../src/labels.js';
import { MetadataStore, type SnapshotRecord } from '../src/store.js';

const D = (c: string) => `sha256:${c.repeat(64)}`;

describe('labels', () => {
  it('reads CRI labels, stargz labels, and recognises unlabelled unpacks by their key', () => {
    const cri = parseLayerLabels({
      'containerd.io/snapshot.ref': D('a'),
      'containerd.io/snapshot/cri.image-ref': 'r.example/app:v1',
      'containerd.io/snapshot/cri.layer-digest': D('b'),
      'containerd.io/snapshot/cri.manifest-digest': D('c'),
      'containerd.io/snapshot/cri.image-layers': `${D('b')},${D('d')}`,
    });
    expect(cri).toEqual({
      kind: 'remote',
      request: { target: D('a'), imageRef: 'r.example/app:v1', layerDigest: D('b'), manifestDigest: D('c'), layers: [D('b'), D('d')] },
    });
    const stargz = parseLayerLabels({
      'containerd.io/snapshot.ref': D('a'),
      'containerd.io/snapshot/remote/stargz.reference': 'r.example/app:v1',
      'containerd.io/snapshot/remote/stargz.digest': D('b'),
    });
    expect(stargz.kind === 'remote' && stargz.request.imageRef).toBe('r.example/app:v1');
    expect(parseLayerLabels({}, `default/3/extract-123-abc ${D('e')}`)).toMatchObject({ kind: 'incomplete' });
    expect(parseLayerLabels({}, 'default/4/my-container')).toEqual({ kind: 'none' });
    expect(
      parseLayerLabels({
        'containerd.io/snapshot.ref': D('a'),
        'containerd.io/snapshot/cri.image-ref': 'x/y',
        'containerd.io/snapshot/cri.layer-digest': 'nope',
      }),
    ).toMatchObject({
      kind: 'incomplete',
      reason: expect.stringMatching(/not a sha256 digest/),
    });
  });
});

describe('filters', () => {
  const target = {
    name: 'default/5/sha256:abc',
    parent: 'p1',
    kind: 'COMMITTED',
    labels: { 'containerd.io/snapshot.ref': 'sha256:abc', plain: 'v' },
  };
  it('evaluates containerd filter expressions the metadata layer sends', () => {
    expect(parseFilters([`labels."containerd.io/snapshot.ref"==sha256:abc,parent=="p1"`])(target)).toBe(true);
    expect(parseFilters([`labels."containerd.io/snapshot.ref"==sha256:abc,parent=="p2"`])(target)).toBe(false);
    expect(parseFilters(['kind==committed'])(target)).toBe(true);
    expect(parseFilters(['labels.plain'])(target)).toBe(true);
    expect(parseFilters(['labels.missing'])(target)).toBe(false);
    expect(parseFilters(['name~=^default/', 'kind==view'])(target)).toBe(true);
    expect(parseFilters(['name!=x'])(target)).toBe(true);
    expect(parseFilters([])(target)).toBe(true);
    expect(() => parseFilters(['size==1'])).toThrow(SnapshotArgumentError);
    expect(() => parseFilters(['name=="open'])).toThrow(SnapshotArgumentError);
  });
});

describe('chain IDs and fallback reasons', () => {
  it('names why an archive was not used', async () => {
    const { ClipError } = await import('@clip/shared');
    expect(fallbackReasonOf(new ClipError('CLIP_E_ARCHIVE_NOT_PUBLISHED', 'x'))).toBe('no_archive');
    expect(fallbackReasonOf(new ClipError('CLIP_E_ARCHIVE_UNBOUND', 'x'))).toBe('untrusted_archive');
    expect(fallbackReasonOf(new ClipError('CLIP_E_DIGEST_MISMATCH', 'x'))).toBe('archive_error');
    expect(fallbackReasonOf(new ClipError('CLIP_E_REGISTRY', 'x'))).toBe('registry_error');
  });
  it('computes containerd identity chain IDs', () => {
    // chain[1] = sha256("<chain0> <diff1>"), checked with sha256sum.
    expect(chainIds([D('1'), D('2')])).toEqual([D('1'), 'sha256:9932074217c35353d2e03a3f5a86549f7c67bfeb0ba53e23d69f4d4c8f7958f5']);
  });
});

describe('metadata store', () => {
  let root: string;
  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), 'clip-snap-store-'));
  });
  afterEach(async () => {
    await rm(root, { recursive: true, force: true });
  });
  const record = (id: number, name: string, parent = ''): SnapshotRecord => ({
    id,
    name,
    kind: 'COMMITTED',
    parent,
    labels: { a: 'b' },
    createdAt: '1',
    updatedAt: '1',
  });

  it('keeps every snapshot across a reopen and refuses duplicate names', async () => {
    const store = await MetadataStore.open(root);
    await store.transaction((tx) => tx.create(record(store.allocateId(), 'base')));
    await store.transaction((tx) => tx.create(record(store.allocateId(), 'top', 'base')));
    await expect(store.transaction((tx) => tx.create(record(9, 'top')))).rejects.toBeInstanceOf(SnapshotExistsError);
    const reopened = await MetadataStore.open(root);
    expect(
      reopened
        .all()
        .map((r) => r.name)
        .sort(),
    ).toEqual(['base', 'top']);
    expect(reopened.ancestors(reopened.require('top')).map((r) => r.name)).toEqual(['base']);
    expect(reopened.allocateId()).toBe(3);
  });

  it('a transaction that throws changes nothing, in memory or on disk', async () => {
    const store = await MetadataStore.open(root);
    await store.transaction((tx) => tx.create(record(1, 'one')));
    const before = await readFile(join(root, 'metadata.json'), 'utf8');
    await expect(
      store.transaction((tx) => {
        tx.delete('one');
        throw new Error('midway');
      }),
    ).rejects.toThrow('midway');
    expect(store.get('one')).toBeDefined();
    expect(await readFile(join(root, 'metadata.json'), 'utf8')).toBe(before);
  });
});

describe('snapshotter after a crash', () => {
  it('never reuses the id of an orphan directory, and Cleanup deletes it', async () => {
    const { mkdir, writeFile, readdir } = await import('node:fs/promises');
    const { ClipSnapshotter } = await import('../src/snapshotter.js');
    const { RemoteDecider } = await import('../src/decision.js');
    const { SnapshotterMetrics } = await import('../src/metrics.js');
    const root = await mkdtemp(join(tmpdir(), 'clip-snap-orphan-'));
    try {
      // Left by a crash after mkdir, before the metadata named it.
      await mkdir(join(root, 'snapshots', '7', 'fs'), { recursive: true });
      await writeFile(join(root, 'snapshots', '7', 'fs', 'stale'), 'x');
      const unused = () => Promise.reject(new Error('no image mounts in this test'));
      const snapshotter = await ClipSnapshotter.open({
        root,
        decider: new RemoteDecider({ resolve: unused }),
        pool: { acquire: unused, release: unused, list: () => Promise.resolve([]) },
        metrics: new SnapshotterMetrics(),
      });
      const mounts = await snapshotter.prepare('fresh', '', {});
      expect(mounts[0]?.source).toBe(join(root, 'snapshots', '8', 'fs'));
      expect(await readdir(join(root, 'snapshots', '8', 'fs'))).toEqual([]);
      expect(await snapshotter.cleanup()).toEqual({ directories: 1, mounts: 0 });
      expect((await readdir(join(root, 'snapshots'))).sort()).toEqual(['8']);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});
