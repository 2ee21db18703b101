// The built `clip index`, `clip inspect` and `clip ls` in child processes: exit codes, JSON
// output, the log line users grep for, listings. Run `npx turbo run build` first.
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createArchive } from '@clip/indexer';
import { readArchiveFile } from '@clip/archive-format';
import { buildFixture, type BuiltLayout, skopeoCopy, startRegistry } from '@clip/testkit';

const CLI = new URL('../dist/main.js', import.meta.url).pathname;

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

function clip(args: string[]): Promise<Result> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [CLI, ...args],
      { env: { ...process.env, CLIP_LOG_FORMAT: 'logfmt' }, timeout: 120_000 },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

let work: string;
let special: BuiltLayout;
let multiarch: BuiltLayout;
const STORAGE = '127.0.0.1:9/clip/special:v1';

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'clip-cli-index-'));
  special = await buildFixture('special', join(work, 'special'));
  multiarch = await buildFixture('multiarch', join(work, 'multiarch'));
});

afterAll(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

describe('clip index', () => {
  it('indexes a local layout with --storage-ref: exit 0, JSON summary, the log line, same bytes as the library', async () => {
    const output = join(work, 'special.clip');
    const result = await clip(['index', special.ref, '-o', output, '--storage-ref', STORAGE, '--json']);
    expect(result.code, result.stderr).toBe(0);
    const summary = JSON.parse(result.stdout) as Record<string, unknown>;
    expect(summary).toMatchObject({ layers: 1, networkBytes: 0, manifestDigest: special.image.manifestDigest, output });
    expect(summary['files']).toBeGreaterThan(10);
    expect(result.stderr).toMatch(
      new RegExp(
        `level=info msg="indexing from local OCI layout with remote storage reference" source_ref=${special.ref.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')} storage_ref=127\\.0\\.0\\.1:9/clip/special:v1`,
      ),
    );
    // The CLI scans in worker threads; the library in-thread: the archives must not differ.
    const library = join(work, 'special-library.clip');
    await createArchive({ source: special.ref, storageRef: STORAGE, output: library, workers: false });
    expect(Buffer.compare(await readFile(output), await readFile(library))).toBe(0);
  });

  it('prints a human summary without --json and plain progress lines when stderr is not a terminal', async () => {
    const result = await clip(['index', special.ref, '-o', join(work, 'plain.clip'), '--storage-ref', STORAGE, '--span-size', '1MiB']);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toMatch(/^wrote .*plain\.clip: \d+ files, \d+ directories, 1 layers, \d+ checkpoints/);
    expect(result.stderr).toMatch(/indexing: 1\/1 layers/);
    expect(result.stderr).not.toContain('\r');
  });

  it('indexes straight from a registry (storage = the source), streaming layers over the network', async () => {
    const registry = await startRegistry();
    try {
      const ref = `${registry.host}/clip/special:v1`;
      await skopeoCopy(special.ref, `docker://${ref}`);
      const output = join(work, 'from-registry.clip');
      const result = await clip(['index', ref, '-o', output, '--json']);
      expect(result.code, result.stderr).toBe(0);
      const summary = JSON.parse(result.stdout) as { networkBytes: number; bytesRead: number; manifestDigest: string };
      expect(summary.networkBytes).toBeGreaterThanOrEqual(summary.bytesRead);
      expect(summary.manifestDigest).toBe(special.image.manifestDigest);
      expect(result.stderr).not.toContain('indexing from local OCI layout');
      const archive = await readArchiveFile(output);
      expect(archive.metadata.storage).toEqual({
        registry: registry.host,
        repository: 'clip/special',
        tag: 'v1',
        manifestDigest: special.image.manifestDigest,
      });
      const local = join(work, 'local-for-registry.clip');
      await createArchive({ source: special.ref, storageRef: ref, output: local, workers: false });
      expect([...archive.walk()].map(({ path, inode }) => [path, inode.ino, inode.size, inode.data?.offset])).toEqual(
        [...(await readArchiveFile(local)).walk()].map(({ path, inode }) => [path, inode.ino, inode.size, inode.data?.offset]),
      );
    } finally {
      await registry.stop();
    }
  });

  it('a local layout without --storage-ref exits 2 and says what to pass', async () => {
    const result = await clip(['index', special.ref, '-o', join(work, 'x.clip')]);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/--storage-ref/);
  });

  it('a missing -o exits 2', async () => {
    expect((await clip(['index', special.ref])).code).toBe(2);
  });

  it('a bad --span-size exits 2', async () => {
    expect((await clip(['index', special.ref, '-o', join(work, 'x.clip'), '--storage-ref', STORAGE, '--span-size', 'lots'])).code).toBe(2);
  });

  it('a platform the image lacks exits 1 with a clear message', async () => {
    const result = await clip(['index', multiarch.ref, '-o', join(work, 'x.clip'), '--storage-ref', STORAGE, '--platform', 'linux/s390x']);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/platform linux\/s390x not found in image index; available: linux\/amd64, linux\/arm64/);
  });

  it('--platform picks an image of an index', async () => {
    const arm = multiarch.images.find((image) => image.platform.architecture === 'arm64')!;
    const result = await clip([
      'index',
      multiarch.ref,
      '-o',
      join(work, 'arm.clip'),
      '--storage-ref',
      STORAGE,
      '--platform',
      'linux/arm64',
      '--json',
    ]);
    expect(result.code, result.stderr).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({ manifestDigest: arm.manifestDigest });
  });
});

describe('clip inspect and clip ls', () => {
  let archive: string;
  beforeAll(async () => {
    archive = join(work, 'inspect.clip');
    await createArchive({ source: special.ref, storageRef: STORAGE, output: archive });
  });

  it('inspect --json reports refs, digest, platform, layers and counts', async () => {
    const result = await clip(['inspect', archive, '--json']);
    expect(result.code, result.stderr).toBe(0);
    const report = JSON.parse(result.stdout) as {
      formatVersion: number;
      metadata: { sourceRef: string; storage: Record<string, unknown>; platform: Record<string, unknown> };
      layers: Array<Record<string, unknown>>;
      counts: Record<string, number>;
      archiveBytes: number;
    };
    expect(report.metadata.sourceRef).toBe(special.ref);
    expect(report.metadata.storage).toEqual({
      registry: '127.0.0.1:9',
      repository: 'clip/special',
      tag: 'v1',
      manifestDigest: special.image.manifestDigest,
    });
    expect(report.metadata.platform).toMatchObject({ os: 'linux', architecture: 'amd64' });
    expect(report.layers).toHaveLength(1);
    expect(report.layers[0]).toMatchObject({ digest: special.image.layers[0]!.digest, compression: 'gzip' });
    expect(report.counts['char']).toBe(2);
    expect(report.counts['block']).toBe(1);
    expect(report.counts['fifo']).toBe(1);
    expect(report.archiveBytes).toBe((await readFile(archive)).length);
  });

  it('inspect prints a readable report', async () => {
    const result = await clip(['inspect', archive]);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain(`manifest    ${special.image.manifestDigest}`);
    expect(result.stdout).toContain('storage     127.0.0.1:9/clip/special:v1');
    expect(result.stdout).toMatch(/files \d+, directories \d+, symlinks \d+, devices 3, fifos 1/);
  });

  it('ls -l shows modes with s/t bits, owners, devices and link targets', async () => {
    const bin = await clip(['ls', '-l', archive, '/usr/bin']);
    expect(bin.code, bin.stderr).toBe(0);
    expect(bin.stdout).toMatch(/^-rwsr-xr-x 1 0 0 +\d+ \d{4}-\d\d-\d\d \d\d:\d\d setuid$/m);
    expect(bin.stdout).toMatch(/^-rwxr-sr-x 1 0 50 +\d+ .* setgid$/m);
    expect(bin.stdout).toMatch(/^-rwsr-sr-t 1 0 0 +\d+ .* all-bits$/m);
    const dev = await clip(['ls', '-l', archive, '/dev']);
    expect(dev.stdout).toMatch(/^crw-rw-rw- 1 0 0 +1, 3 .* null$/m);
    expect(dev.stdout).toMatch(/^brw-rw---- 1 0 6 +7, 0 .* loop0$/m);
    expect(dev.stdout).toMatch(/^prw------- 1 0 0 +0 .* fifo$/m);
    const home = await clip(['ls', '-l', archive, 'home/user']);
    expect(home.stdout).toMatch(/^lrwxrwxrwx 1 1000 +1000 +8 2014-05-13 16:53 link -> \.profile$/m);
    const vtmp = await clip(['ls', '-l', archive, '/var']);
    expect(vtmp.stdout).toMatch(/^drwxrwxrwt 2 0 0 +0 .* tmp$/m);
  });

  it('ls without -l lists names; a file path lists the file; a missing path exits 1', async () => {
    const root = await clip(['ls', archive]);
    expect(root.stdout.split('\n')).toEqual(expect.arrayContaining(['dev', 'home', 'usr', 'var']));
    const file = await clip(['ls', '-l', archive, '/home/user/.profile']);
    expect(file.stdout).toMatch(/^-rw-r--r-- 1 1000 +1000 +11 .* \/home\/user\/\.profile$/m);
    const missing = await clip(['ls', archive, '/no/such']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('no such file in archive: /no/such');
  });
});
