// createArchive's refusals and guarantees: malformed or hostile layers, wrong platforms,
// missing storage references, no network for local sources, atomic output.
import { appendFile, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { gzipSync } from 'node:zlib';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readArchiveFile } from '@clip/archive-format';
import { DigestMismatchError, LayerFormatError, LayerNotFoundError, PlatformNotFoundError, UsageError } from '@clip/shared';
import { buildFixture, type BuiltLayout, type RawMember, tar, writeRawLayout } from '@clip/testkit';
import { createArchive } from '../src/create-archive.js';

let work: string;
let basic: BuiltLayout;
let multiarch: BuiltLayout;
const STORAGE = '127.0.0.1:9/never/contacted:v1';

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'clip-indexer-errors-'));
  basic = await buildFixture('basic', join(work, 'basic'));
  multiarch = await buildFixture('multiarch', join(work, 'multiarch'));
});

afterAll(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

async function expectRejects<T extends Error>(promise: Promise<unknown>, type: new (...args: never[]) => T, pattern: RegExp): Promise<T> {
  const error = await promise.then(
    () => undefined,
    (caught: unknown) => caught,
  );
  expect(error).toBeInstanceOf(type);
  expect((error as Error).message).toMatch(pattern);
  return error as T;
}

describe('malformed layers fail with LayerFormatError naming the layer digest', () => {
  const good: RawMember = { name: 'etc/ok', data: 'fine\n' };
  const cases: Array<[string, () => Uint8Array, RegExp]> = [
    ['bad header checksum', () => tar([good, { name: 'etc/bad', data: 'x', badChecksum: true }]), /checksum/],
    [
      'truncated entry',
      () => tar([good, { name: 'etc/big', data: 'y'.repeat(3000) }], { endMarker: false }).subarray(0, 2048),
      /truncated/,
    ],
    ['../ in a name', () => tar([good, { name: '../../etc/passwd', data: 'x' }]), /"\.\." component/],
    ['NUL in a name', () => tar([good, { name: 'x', pax: { path: 'etc/a\0b' } }]), /NUL/],
    ['sparse member', () => tar([good, { name: 's', typeflag: 'S', magic: 'gnu' }]), /sparse/],
    ['hardlink to nothing', () => tar([good, { name: 'h', typeflag: '1', linkname: 'missing' }]), /does not exist/],
  ];
  it.each(cases)('%s', async (label, makeTar, pattern) => {
    const dir = join(work, 'bad', label.replace(/\W+/g, '-'));
    const layout = await writeRawLayout(dir, 'bad', [tar([{ name: 'base', data: 'ok' }]), makeTar()]);
    const output = join(dir, 'out.clip');
    const error = await expectRejects(
      createArchive({ source: layout.ref, storageRef: STORAGE, output, workers: false }),
      LayerFormatError,
      pattern,
    );
    expect(error.message).toContain(layout.layerDigests[1]);
    // Nothing half-written is left behind.
    expect((await readdir(dir)).filter((name) => name.includes('.clip'))).toEqual([]);
  });

  it('absolute names are made relative, not refused', async () => {
    const dir = join(work, 'absolute');
    const layout = await writeRawLayout(dir, 'abs', [
      tar([
        { name: '/etc/abs', data: 'abs\n' },
        { name: './rel/./x', data: 'x' },
      ]),
    ]);
    await createArchive({ source: layout.ref, storageRef: STORAGE, output: join(dir, 'out.clip') });
    const archive = await readArchiveFile(join(dir, 'out.clip'));
    expect(archive.lookup('/etc/abs')?.size).toBe(4);
    expect(archive.lookup('/rel/x')?.size).toBe(1);
  });
});

describe('platforms', () => {
  it('picks the requested platform from an index', async () => {
    for (const image of multiarch.images) {
      const output = join(work, `multi-${image.platform.architecture}.clip`);
      const summary = await createArchive({ source: multiarch.ref, storageRef: STORAGE, output, platform: image.platform });
      expect(summary.manifestDigest).toBe(image.manifestDigest);
      const archive = await readArchiveFile(output);
      expect(archive.metadata.platform?.architecture).toBe(image.platform.architecture);
    }
  });

  it('a platform the index lacks is a clear error listing what is there', async () => {
    await expectRejects(
      createArchive({
        source: multiarch.ref,
        storageRef: STORAGE,
        output: join(work, 'x.clip'),
        platform: { os: 'linux', architecture: 's390x' },
      }),
      PlatformNotFoundError,
      /linux\/s390x not found.*linux\/amd64.*linux\/arm64/,
    );
  });

  it('a single-platform image of another platform is refused when a platform is asked for', async () => {
    await expectRejects(
      createArchive({
        source: basic.ref,
        storageRef: STORAGE,
        output: join(work, 'x.clip'),
        platform: { os: 'linux', architecture: 'riscv64' },
      }),
      PlatformNotFoundError,
      /linux\/riscv64 not found.*linux\/amd64/,
    );
  });
});

describe('storage references', () => {
  it('a local layout without --storage-ref is a usage error that says what to pass', async () => {
    await expectRejects(createArchive({ source: basic.ref, output: join(work, 'x.clip') }), UsageError, /--storage-ref/);
  });

  it('a storage reference must be a registry reference', async () => {
    await expectRejects(
      createArchive({ source: basic.ref, storageRef: `oci:${work}/other:tag`, output: join(work, 'x.clip') }),
      UsageError,
      /registry reference/,
    );
  });
});

describe('output', () => {
  it('an output directory that does not exist is a CLIP_E_IO error', async () => {
    const error = await createArchive({ source: basic.ref, storageRef: STORAGE, output: join(work, 'no', 'such', 'dir', 'x.clip') }).then(
      () => undefined,
      (caught: unknown) => caught as { code?: string; message: string },
    );
    expect(error?.code).toBe('CLIP_E_IO');
    expect(error?.message).toContain('cannot write the archive');
  });

  it('replaces an existing archive atomically', async () => {
    const output = join(work, 'replace.clip');
    await createArchive({ source: multiarch.ref, storageRef: STORAGE, output, platform: { os: 'linux', architecture: 'arm64' } });
    await createArchive({ source: basic.ref, storageRef: STORAGE, output });
    expect((await readArchiveFile(output)).lookup('/etc/hostname')).toBeDefined();
    expect((await readdir(work)).filter((name) => name.endsWith('.tmp'))).toEqual([]);
  });
});

describe('no network during local indexing', () => {
  let server: Server;
  let connections = 0;
  let port = 0;

  beforeAll(async () => {
    server = createServer((socket) => {
      connections++;
      socket.destroy();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const address = server.address();
    port = typeof address === 'object' && address ? address.port : 0;
  });

  afterAll(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  it('never connects to the storage registry (observed by a listening server)', async () => {
    const output = join(work, 'nonet.clip');
    const summary = await createArchive({ source: basic.ref, storageRef: `127.0.0.1:${port}/watched/repo:v1`, output });
    expect(connections).toBe(0);
    expect(summary.networkBytes).toBe(0);
    expect(summary.bytesRead).toBe(basic.image.layers.reduce((sum, layer) => sum + layer.size, 0));
    const archive = await readArchiveFile(output);
    expect(archive.metadata.storage).toMatchObject({ registry: `127.0.0.1:${port}`, repository: 'watched/repo', tag: 'v1' });
  });
});

describe('local layout blobs are read directly and still verified', () => {
  async function layoutWithBlob(label: string): Promise<{ layout: Awaited<ReturnType<typeof writeRawLayout>>; blob: string; dir: string }> {
    const dir = join(work, 'local-blob', label);
    const layout = await writeRawLayout(dir, 'img', [tar([{ name: 'etc/a', data: 'a'.repeat(5000) }])]);
    const blob = join(dir, 'blobs', 'sha256', layout.layerDigests[0]!.slice('sha256:'.length));
    return { layout, blob, dir };
  }

  it('a blob whose bytes do not match its digest is a DigestMismatchError', async () => {
    const { layout, blob, dir } = await layoutWithBlob('tampered');
    // Another valid gzip'd tar under the same name: the scan succeeds, the digest does not.
    await writeFile(blob, gzipSync(tar([{ name: 'etc/a', data: 'b'.repeat(5000) }])));
    await expectRejects(
      createArchive({ source: layout.ref, storageRef: STORAGE, output: join(dir, 'out.clip'), workers: false }),
      DigestMismatchError,
      /digest mismatch/,
    );
  });

  it('a blob with a wrong gzip CRC-32 is refused by the digest check (the scan skips the CRC)', async () => {
    const { layout, blob, dir } = await layoutWithBlob('bad-crc');
    const bytes = await readFile(blob);
    bytes[bytes.length - 8]! ^= 0xff;
    await writeFile(blob, bytes);
    // Without the opt-out this would be a LayerFormatError ("incorrect data check") before the digest is known.
    await expectRejects(
      createArchive({ source: layout.ref, storageRef: STORAGE, output: join(dir, 'out.clip'), workers: false }),
      DigestMismatchError,
      /digest mismatch/,
    );
  });

  it('a blob with extra bytes after the declared size is refused', async () => {
    const { layout, blob, dir } = await layoutWithBlob('longer');
    await appendFile(blob, gzipSync(Buffer.alloc(0))); // an empty gzip member: still a valid stream
    await expectRejects(
      createArchive({ source: layout.ref, storageRef: STORAGE, output: join(dir, 'out.clip'), workers: false }),
      DigestMismatchError,
      /digest mismatch/,
    );
  });

  it('a missing blob is reported by the source as a missing layer', async () => {
    const { layout, blob, dir } = await layoutWithBlob('missing');
    await rm(blob);
    await expectRejects(
      createArchive({ source: layout.ref, storageRef: STORAGE, output: join(dir, 'out.clip'), workers: false }),
      LayerNotFoundError,
      /not found/,
    );
  });
});
