// `clip cat` end to end: every regular file of the fixtures, read through ranged registry
// fetches by the built cli, equals umoci's unpacked file; a wrong storage reference and a
// directory fail with exit code 1 and a message that says why.
import { createHash } from 'node:crypto';
import { copyFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createArchive } from '@clip/indexer';
import { buildFixture, type RunningRegistry, skopeoCopy, startRegistry } from '@clip/testkit';
import { prepareFixture, removeAll, runCli, tempDir, type PreparedImage } from './mount-harness.js';

const NAMES = ['basic', 'layers', 'special', 'large'] as const;

let work: string;
let registry: RunningRegistry | undefined;
const images = new Map<string, PreparedImage>();

beforeAll(async () => {
  work = await tempDir('cat-test');
  registry = await startRegistry();
  for (const name of NAMES) images.set(name, await prepareFixture(registry, work, name));
});

afterAll(async () => {
  await registry?.stop();
  await removeAll(work);
});

const sha256 = (data: Uint8Array) => createHash('sha256').update(data).digest('hex');

describe('clip cat', () => {
  it.each(NAMES)('prints every file of fixture %s as umoci unpacks it', async (name) => {
    const image = images.get(name)!;
    const files = [...image.expected].filter(([, node]) => node.type === 'file');
    expect(files.length).toBeGreaterThan(0);
    for (const [path, node] of files) {
      const result = await runCli(['cat', image.archive, path]);
      expect({ path, code: result.code, stderr: result.code ? result.stderr : '' }).toEqual({ path, code: 0, stderr: '' });
      expect(sha256(result.stdout)).toBe(node.sha256);
      expect(result.stderr).toMatch(/msg="cached source image reference from metadata" reference=127\.0\.0\.1:\d+\/images\//);
    }
  });

  it('follows symlinks inside the image', async () => {
    const image = images.get('basic')!;
    const link = [...image.expected].find(([path, node]) => {
      if (node.type !== 'symlink' || !node.linkTarget) return false;
      const target = node.linkTarget.startsWith('/') ? node.linkTarget : join(path, '..', node.linkTarget);
      return image.expected.get(target)?.type === 'file';
    });
    if (!link) return; // the fixture has no symlink to a file
    const [path, node] = link;
    const target = node.linkTarget!.startsWith('/') ? node.linkTarget! : join(path, '..', node.linkTarget!);
    const result = await runCli(['cat', image.archive, path]);
    expect(result.code).toBe(0);
    expect(sha256(result.stdout)).toBe(image.expected.get(target)!.sha256);
  });

  it('fails on a directory and on a missing path', async () => {
    const image = images.get('basic')!;
    const dir = await runCli(['cat', image.archive, '/']);
    expect(dir.code).toBe(1);
    expect(dir.stderr).toMatch(/is a directory, not a regular file/);
    const missing = await runCli(['cat', image.archive, '/no/such/file']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/no such file in archive/);
  });

  it('names digest and reference when the storage reference is wrong', async () => {
    const layout = await buildFixture('basic', join(work, 'wrong-layout'));
    // Pushed under one name, indexed as if it were under another (which has no blobs).
    await skopeoCopy(layout.ref, `docker://${registry!.host}/right/basic:${layout.tag}`);
    const other = await buildFixture('layers', join(work, 'other-layout'));
    await skopeoCopy(other.ref, `docker://${registry!.host}/wrong/basic:${layout.tag}`);
    const wrongRef = `${registry!.host}/wrong/basic:${layout.tag}`;
    const built = join(work, 'wrong-build.clip');
    await createArchive({ source: layout.ref, storageRef: wrongRef, output: built, workers: false });
    const fresh = join(work, 'wrong-worker');
    await mkdir(fresh, { recursive: true });
    await copyFile(built, join(fresh, 'wrong.clip'));
    const file = [...images.get('basic')!.expected].find(([, node]) => node.type === 'file' && (node.size ?? 0) > 0)![0];
    const result = await runCli(['cat', join(fresh, 'wrong.clip'), file]);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/layer not found: sha256:[0-9a-f]{64} in 127\.0\.0\.1:\d+\/wrong\/basic/);
  });
});
