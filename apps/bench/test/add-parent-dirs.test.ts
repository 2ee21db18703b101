// tools/add-parent-dirs.py: the copy of a layout whose upper layer leaves a parent directory
// implied gets that entry (with the lower layer's metadata), and unpacks to the same tree.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const tool = fileURLToPath(new URL('../tools/add-parent-dirs.py', import.meta.url));
const work = mkdtempSync(join(tmpdir(), 'add-parents-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const sha = (data: Buffer) => createHash('sha256').update(data).digest('hex');

function blob(layout: string, data: Buffer | string): { digest: string; size: number } {
  const bytes = Buffer.from(data);
  const hex = sha(bytes);
  writeFileSync(join(layout, 'blobs', 'sha256', hex), bytes);
  return { digest: `sha256:${hex}`, size: bytes.length };
}

/** A gzip layer of `entries` (paths under `root`, no recursion: only the entries named). */
function layer(root: string, entries: string[]): { tar: Buffer; gz: Buffer } {
  const tar = execFileSync('tar', ['-C', root, '--no-recursion', '--owner=0', '--group=0', '-cf', '-', ...entries]);
  return { tar, gz: execFileSync('gzip', ['-n'], { input: tar }) };
}

const isRoot = process.getuid?.() === 0;

describe.skipIf(!isRoot)('add-parent-dirs.py', () => {
  it('adds the implied parent directory with the lower layer metadata; the tree is unchanged', () => {
    const root = join(work, 'root');
    mkdirSync(join(root, 'usr/lib/python3'), { recursive: true });
    writeFileSync(join(root, 'usr/lib/python3/a.py'), 'a\n');
    writeFileSync(join(root, 'usr/lib/python3/b.py'), 'b\n');
    execFileSync('chmod', ['0750', join(root, 'usr/lib/python3')]);
    const lower = layer(root, ['usr', 'usr/lib', 'usr/lib/python3', 'usr/lib/python3/a.py']);
    const upper = layer(root, ['usr/lib/python3/b.py']);

    const source = join(work, 'source');
    mkdirSync(join(source, 'blobs', 'sha256'), { recursive: true });
    writeFileSync(join(source, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
    const config = blob(
      source,
      JSON.stringify({
        architecture: 'amd64',
        os: 'linux',
        config: {},
        rootfs: { type: 'layers', diff_ids: [`sha256:${sha(lower.tar)}`, `sha256:${sha(upper.tar)}`] },
      }),
    );
    const gzType = 'application/vnd.oci.image.layer.v1.tar+gzip';
    const manifest = blob(
      source,
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config },
        layers: [
          { mediaType: gzType, ...blob(source, lower.gz) },
          { mediaType: gzType, ...blob(source, upper.gz) },
        ],
      }),
    );
    writeFileSync(
      join(source, 'index.json'),
      JSON.stringify({
        schemaVersion: 2,
        manifests: [
          {
            mediaType: 'application/vnd.oci.image.manifest.v1+json',
            ...manifest,
            annotations: { 'org.opencontainers.image.ref.name': 'v1' },
          },
        ],
      }),
    );

    const copy = join(work, 'copy');
    const printed = execFileSync('python3', [tool, source, 'v1', copy], { encoding: 'utf8' });
    // usr, usr/lib and usr/lib/python3 are all implied in the upper layer.
    expect(JSON.parse(printed)).toEqual({ addedDirectories: 3 });

    const index = JSON.parse(readFileSync(join(copy, 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
    const copied = JSON.parse(readFileSync(join(copy, 'blobs', 'sha256', index.manifests[0]!.digest.slice(7)), 'utf8')) as {
      layers: { digest: string }[];
    };
    const upperList = execFileSync('tar', ['-tvzf', join(copy, 'blobs', 'sha256', copied.layers[1]!.digest.slice(7))], {
      encoding: 'utf8',
    });
    expect(
      upperList
        .trim()
        .split('\n')
        .map((line) => line.split(/\s+/).at(-1)),
    ).toEqual(['usr/', 'usr/lib/', 'usr/lib/python3/', 'usr/lib/python3/b.py']);
    expect(upperList).toMatch(/^drwxr-x--- .* usr\/lib\/python3\/\n/m);

    // umoci verifies every digest and diff ID while unpacking.
    const listing = (layout: string) => {
      const bundle = join(work, `bundle-${layout.split('/').pop()}`);
      execFileSync('umoci', ['unpack', '--image', `${layout}:v1`, bundle], { stdio: 'pipe' });
      return execFileSync('find', [join(bundle, 'rootfs'), '-printf', '%P %m %u %g %s\\n'], { encoding: 'utf8' })
        .split('\n')
        .sort();
    };
    expect(listing(copy)).toEqual(listing(source));
  });
});
