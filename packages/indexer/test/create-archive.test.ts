// Every testkit fixture, end to end with real parts: build the OCI layout, push it to a real
// registry with skopeo, index the LOCAL layout with a storage reference, and compare the
// archive's tree with the fixture's expected tree and with what `umoci unpack` produces.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openArchive, readArchiveFile } from '@clip/archive-format';
import { createLogger } from '@clip/shared';
import {
  buildFixture,
  type BuiltImage,
  diffTrees,
  FIXTURE_NAMES,
  type FixtureName,
  readTree,
  type RunningRegistry,
  skopeoCopy,
  startRegistry,
  umociUnpack,
} from '@clip/testkit';
import { createArchive } from '../src/create-archive.js';
import { archiveTree, uncompressedLayer, withoutDirectoryMtimes } from './helpers/archive-tree.js';

let work: string;
let registry: RunningRegistry | undefined;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'clip-indexer-fixtures-'));
  registry = await startRegistry();
});

afterAll(async () => {
  await registry?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

function platformOf(image: BuiltImage) {
  return image.platform;
}

/** Byte arrays as hex: decoders may hand back Buffer or Uint8Array views for the same bytes. */
function plain(value: unknown): unknown {
  if (ArrayBuffer.isView(value)) return Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('hex');
  if (Array.isArray(value)) return value.map(plain);
  if (value !== null && typeof value === 'object')
    return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, plain(item)]));
  return value;
}

describe.each(FIXTURE_NAMES)('fixture %s', (name: FixtureName) => {
  it('local layout + storage ref: tree equals expectation and umoci, deterministic, no registry traffic, same table as from the registry', async () => {
    const layout = await buildFixture(name, join(work, 'layouts', name));
    const repository = `fixtures/${name}`;
    const storageRef = `${registry!.host}/${repository}:${layout.tag}`;
    await skopeoCopy(layout.ref, `docker://${storageRef}`, { all: layout.images.length > 1 });

    for (const image of layout.images) {
      const platform = platformOf(image);
      const label = `${name} ${image.tag}`;
      const output = join(work, `${name}-${image.tag}.clip`);
      const logLines: string[] = [];
      const logger = createLogger({ format: 'json', write: (line) => logLines.push(line) });
      const registryLogBefore = registry!.logs();

      const summary = await createArchive({ source: layout.ref, storageRef, output, platform, logger });

      // Indexing the local layout never talked to the registry named by the storage ref.
      expect(registry!.logs(), label).toBe(registryLogBefore);
      expect(summary.networkBytes).toBe(0);
      const announced = logLines
        .map((line) => JSON.parse(line) as Record<string, unknown>)
        .find((record) => record['msg'] === 'indexing from local OCI layout with remote storage reference');
      expect(announced, label).toMatchObject({ level: 'info', source_ref: layout.ref, storage_ref: storageRef });

      const archive = await readArchiveFile(output);
      expect(archive.metadata.storage).toEqual({
        registry: registry!.host,
        repository,
        tag: layout.tag,
        manifestDigest: image.manifestDigest,
      });
      expect(archive.metadata.sourceRef).toBe(layout.ref);
      expect(archive.metadata.platform).toMatchObject({ os: platform.os, architecture: platform.architecture });
      expect(archive.layers.map((layer) => layer.digest)).toEqual(image.layers.map((layer) => layer.digest));
      expect(archive.layers.map((layer) => layer.diffId)).toEqual(image.layers.map((layer) => layer.diffId));
      expect(archive.layers.map((layer) => layer.uncompressedSize)).toEqual(image.layers.map((layer) => layer.uncompressedSize));
      expect(summary.layers).toBe(image.layers.length);
      expect(summary.archiveBytes).toBe((await readFile(output)).length);

      const layers = await Promise.all(image.layers.map((layer) => uncompressedLayer(layer.blobPath, layer.compression)));
      const tree = archiveTree(archive, layers);
      expect(diffTrees(image.expected, tree), `${label} vs expected`).toEqual([]);
      expect(summary.files).toBe([...tree.values()].filter((node) => node.type === 'file').length);
      expect(summary.directories).toBe([...tree.values()].filter((node) => node.type === 'directory').length);

      const rootfs = await umociUnpack(image.umociRef, join(work, 'bundles', `${name}-${image.tag}`));
      try {
        // Implicit parents have no mtime in an archive; umoci gives them the unpack time.
        expect(diffTrees(withoutDirectoryMtimes(await readTree(rootfs)), tree), `${label} vs umoci`).toEqual([]);
      } finally {
        await rm(join(work, 'bundles', `${name}-${image.tag}`), { recursive: true, force: true });
      }

      // Indexing twice gives the same bytes.
      const again = join(work, `${name}-${image.tag}-again.clip`);
      await createArchive({ source: layout.ref, storageRef, output: again, platform });
      expect(Buffer.compare(await readFile(again), await readFile(output)), `${label} determinism`).toBe(0);

      // From the registry: same file table, layers and storage; bytes came over the network.
      const fromRegistry = join(work, `${name}-${image.tag}-registry.clip`);
      const remote = await createArchive({ source: storageRef, output: fromRegistry, platform });
      expect(remote.networkBytes).toBeGreaterThan(0);
      const a = archive;
      const b = openArchive(new Uint8Array(await readFile(fromRegistry)));
      expect(b.metadata.storage, label).toEqual(a.metadata.storage);
      expect(b.metadata.sourceRef).toBe(storageRef);
      expect(b.inodeCount, label).toBe(a.inodeCount);
      for (let ino = 1; ino <= a.inodeCount; ino++) expect(plain(b.inode(ino)), label).toEqual(plain(a.inode(ino)));
      expect(
        [...b.walk()].map((e) => [e.path, e.inode.ino]),
        label,
      ).toEqual([...a.walk()].map((e) => [e.path, e.inode.ino]));
      expect(plain(b.layers), label).toEqual(plain(a.layers));
    }
  }, 240_000);
});
