// Hostile images through the BUILT `clip index` (and `clip cat` for links): each must end in
// a clean typed error on stderr with exit code 1 — never an internal error (exit 70), never
// a hang — or, where the input is legal but nasty (bombs), index within bounded time.
import { createHash } from 'node:crypto';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RawMember, tar, writeRawLayout } from '@clip/testkit';
import { removeAll, runCli, tempDir } from './mount-harness.js';

const STORAGE = '127.0.0.1:9/never/contacted:v1';
/** Generous bound on one command: a hang fails the test rather than stalling it. */
const COMMAND_TIMEOUT_MS = 60_000;
let work: string;

beforeAll(async () => {
  work = await tempDir('hostile');
});
afterAll(async () => {
  await removeAll(work);
});

async function index(label: string, tars: Uint8Array[]): Promise<{ code: number; stderr: string; output: string }> {
  const dir = join(work, label.replace(/\W+/g, '-'));
  const layout = await writeRawLayout(dir, 'hostile', tars);
  const output = join(dir, 'out.clip');
  const result = await runCli(['index', layout.ref, '-o', output, '--storage-ref', STORAGE, '--no-progress'], {
    timeoutMs: COMMAND_TIMEOUT_MS,
  });
  return { code: result.code, stderr: result.stderr, output };
}

function expectTypedFailure(result: { code: number; stderr: string }, pattern: RegExp): void {
  expect(result.stderr).not.toMatch(/internal error/);
  expect(result.stderr).toMatch(/^clip: error: .* \[CLIP_E_[A-Z_]+\]$/m);
  expect(result.stderr).toMatch(pattern);
  expect(result.code).toBe(1);
}

const ok: RawMember = { name: 'etc/ok', data: 'fine\n' };
const base = tar([
  { name: 'etc/', typeflag: '5' },
  { name: 'etc/base', data: 'base\n' },
]);

const REFUSED: Array<[string, () => Uint8Array, RegExp]> = [
  ['bad header checksum', () => tar([ok, { name: 'etc/bad', data: 'x', badChecksum: true }]), /checksum/],
  [
    'negative size (base-256)',
    () => {
      const data = tar([ok, { name: 'etc/neg', data: 'x' }]);
      const at = 512 * 2 + 124; // second member's size field
      data.fill(0xff, at, at + 12);
      fixChecksum(data, 1024);
      return data;
    },
    /negative size|CLIP_E_LAYER_FORMAT/,
  ],
  ['huge size with the data missing', () => tar([ok, { name: 'etc/huge', data: 'x', sizeField: 0o77777777777 }]), /truncated/],
  [
    'octal garbage in the size',
    () => {
      const data = tar([ok, { name: 'etc/garbage', data: 'x' }]);
      data.set(Buffer.from('12x45\0'), 1024 + 124);
      fixChecksum(data, 1024);
      return data;
    },
    /CLIP_E_LAYER_FORMAT/,
  ],
  ['truncated entry', () => tar([ok, { name: 'etc/big', data: 'y'.repeat(3000) }], { endMarker: false }).subarray(0, 2048), /truncated/],
  ['../ in a name', () => tar([ok, { name: '../../etc/passwd', data: 'x' }]), /"\.\." component/],
  [
    '.. hidden in a PAX path',
    () => tar([ok, { name: 'x', data: 'x', pax: { path: 'a/../../../root/.ssh/authorized_keys' } }]),
    /"\.\." component/,
  ],
  ['NUL in a name', () => tar([ok, { name: 'x', pax: { path: 'etc/a\0b' } }]), /NUL/],
  ['hardlink to a missing target', () => tar([ok, { name: 'h', typeflag: '1', linkname: 'missing' }]), /does not exist/],
  ['hardlink escaping the root', () => tar([ok, { name: 'h', typeflag: '1', linkname: '../../etc/shadow' }]), /"\.\." component/],
  [
    'hardlink loop',
    () => tar([ok, { name: 'h1', typeflag: '1', linkname: 'h2' }, { name: 'h2', typeflag: '1', linkname: 'h1' }]),
    /does not exist|loop|CLIP_E_LAYER_FORMAT/,
  ],
  ['hardlink to itself', () => tar([ok, { name: 'self', typeflag: '1', linkname: 'self' }]), /does not exist|itself|CLIP_E_LAYER_FORMAT/],
  [
    'hardlink to a directory',
    () => tar([ok, { name: 'd/', typeflag: '5' }, { name: 'hd', typeflag: '1', linkname: 'd' }]),
    /director|CLIP_E_LAYER_FORMAT/,
  ],
  ['not a tar at all', () => new Uint8Array(4096).fill(0x41), /CLIP_E_LAYER_FORMAT/],
];

function fixChecksum(data: Uint8Array, at: number): void {
  const block = data.subarray(at, at + 512);
  block.fill(0x20, 148, 156);
  let sum = 0;
  for (const byte of block) sum += byte;
  block.set(Buffer.from(`${sum.toString(8).padStart(6, '0')}\0 `, 'latin1'), 148);
}

describe('clip index refuses hostile layers with a typed error and exit code 1', () => {
  it.each(REFUSED)('%s', async (label, makeTar, pattern) => {
    const result = await index(label, [base, makeTar()]);
    expectTypedFailure(result, pattern);
  });
});

describe('legal but nasty layers index within bounds, and links stay inside the image', () => {
  it('absolute names are made relative (nothing lands outside the image root)', async () => {
    const result = await index('absolute', [base, tar([{ name: '/etc/abs', data: 'abs\n' }])]);
    expect(result.code, result.stderr).toBe(0);
    const ls = await runCli(['ls', result.output, '/etc']);
    expect(ls.stdout.toString()).toMatch(/abs/);
  });

  it('duplicate entries: the later one wins', async () => {
    const result = await index('duplicates', [
      base,
      tar([
        { name: 'etc/dup', data: 'first\n' },
        { name: 'etc/dup', data: 'second!\n' },
      ]),
    ]);
    expect(result.code, result.stderr).toBe(0);
    const ls = await runCli(['ls', '-l', result.output, '/etc']).catch(() => undefined);
    if (ls && ls.code === 0) expect(ls.stdout.toString()).toMatch(/dup/);
  });

  it('symlink loops index, and clip cat through one fails with a typed error instead of looping', async () => {
    const result = await index('symlink-loop', [
      base,
      tar([
        { name: 'a', typeflag: '2', linkname: 'b' },
        { name: 'b', typeflag: '2', linkname: 'a' },
        { name: 'self', typeflag: '2', linkname: './self' },
      ]),
    ]);
    expect(result.code, result.stderr).toBe(0);
    for (const path of ['/a', '/self']) {
      const cat = await runCli(['cat', result.output, path], { timeoutMs: COMMAND_TIMEOUT_MS });
      expectTypedFailure(cat, /link|loop|CLIP_E_/);
    }
  });

  it('a tar bomb of 100k entries indexes in bounded time and memory', async () => {
    const members: RawMember[] = [{ name: 'bomb/', typeflag: '5' }];
    for (let i = 0; i < 100_000; i++) members.push({ name: `bomb/f${i}`, data: '' });
    const result = await index('many-entries', [base, tar(members)]);
    expect(result.stderr).not.toMatch(/internal error/);
    expect([0, 1]).toContain(result.code);
  }, 120_000);

  it('deeply nested directories (depth 3000) index or are refused cleanly', async () => {
    const members: RawMember[] = [];
    let path = 'n';
    for (let depth = 0; depth < 3000; depth++) {
      members.push({ name: `${path}/`, typeflag: '5', pax: { path: `${path}/` } });
      path += '/n';
    }
    members.push({ name: 'leaf', data: 'deep\n', pax: { path: `${path}/leaf` } });
    const result = await index('deep', [base, tar(members)]);
    expect(result.stderr).not.toMatch(/internal error/);
    expect([0, 1]).toContain(result.code);
  }, 120_000);
});

describe('hostile manifests', () => {
  async function layoutWithManifest(label: string, edit: (manifest: Record<string, unknown>) => void, dropLayer = false): Promise<string> {
    const dir = join(work, `manifest-${label}`);
    const layout = await writeRawLayout(dir, 'hostile', [base]);
    const blobPath = (digest: string) => join(dir, 'blobs', 'sha256', digest.slice(7));
    const manifest = JSON.parse(await readFile(blobPath(layout.manifestDigest), 'utf8')) as Record<string, unknown>;
    edit(manifest);
    const bytes = Buffer.from(JSON.stringify(manifest));
    const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
    await writeFile(blobPath(digest), bytes);
    if (dropLayer) await rm(blobPath(layout.layerDigests[0]!));
    const index = JSON.parse(await readFile(join(dir, 'index.json'), 'utf8')) as { manifests: Array<Record<string, unknown>> };
    index.manifests[0]!.digest = digest;
    index.manifests[0]!.size = bytes.length;
    if (typeof manifest.mediaType === 'string') index.manifests[0]!.mediaType = manifest.mediaType;
    await writeFile(join(dir, 'index.json'), JSON.stringify(index));
    return layout.ref;
  }

  const CASES: Array<[string, (m: Record<string, unknown>) => void, boolean]> = [
    ['wrong manifest media type', (m) => (m.mediaType = 'application/vnd.example.not-a-manifest+json'), false],
    [
      'wrong layer media type',
      (m) => ((m.layers as Array<Record<string, unknown>>)[0]!.mediaType = 'application/x-shockwave-flash'),
      false,
    ],
    ['layers not a list', (m) => (m.layers = { evil: true }), false],
    ['missing layer blob', () => {}, true],
    ['layer digest not a digest', (m) => ((m.layers as Array<Record<string, unknown>>)[0]!.digest = 'sha256:../../../etc/passwd'), false],
  ];
  it.each(CASES)('%s', async (label, edit, dropLayer) => {
    const ref = await layoutWithManifest(label.replace(/\W+/g, '-'), edit, dropLayer);
    const result = await runCli(
      ['index', ref, '-o', join(work, `${label.replace(/\W+/g, '-')}.clip`), '--storage-ref', STORAGE, '--no-progress'],
      { timeoutMs: COMMAND_TIMEOUT_MS },
    );
    expectTypedFailure(result, /CLIP_E_/);
  });

  it('a layer size that lies (digest right) is indexed from the real bytes or refused, never a crash', async () => {
    const ref = await layoutWithManifest('size-lies', (m) => ((m.layers as Array<Record<string, unknown>>)[0]!.size = 1));
    const result = await runCli(['index', ref, '-o', join(work, 'size-lies.clip'), '--storage-ref', STORAGE, '--no-progress'], {
      timeoutMs: COMMAND_TIMEOUT_MS,
    });
    expect(result.stderr).not.toMatch(/internal error/);
    expect([0, 1]).toContain(result.code);
  });
});
