// Issue #19 part 5, the indexing and output defects: non-UTF-8 names (were merged into one
// U+FFFD file), names with control bytes printed raw by `clip ls`, gzip corruption errors that
// did not name the layer, references with a password echoed in errors, and a username
// without a password reported as "none were found". The BUILT cli in child processes.
import { createServer } from 'node:http';
import { mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tar, type RawMember } from '@clip/testkit';
import { writeRawLayout } from '@clip/testkit';
import { freePort, startRegistry } from '@clip/testkit';
import { removeAll, runCli, startMount, tempDir } from './mount-harness.js';

const STORAGE = '127.0.0.1:9/never/contacted:v1';
let work: string;

beforeAll(async () => {
  work = await tempDir('hostile-names');
});
afterAll(async () => {
  await removeAll(work);
});

function fixChecksum(data: Uint8Array, at: number): void {
  const block = data.subarray(at, at + 512);
  block.fill(0x20, 148, 156);
  let sum = 0;
  for (const byte of block) sum += byte;
  block.set(Buffer.from(`${sum.toString(8).padStart(6, '0')}\0 `, 'latin1'), 148);
}

/** A tar whose members' names get raw bytes: `Z` in a name is replaced by the next byte of `raw`. */
function tarWithRawBytes(members: RawMember[], raw: number[]): Uint8Array {
  const data = tar(members);
  let next = 0;
  for (let at = 0; at + 512 <= data.length && next < raw.length; at += 512) {
    const z = data.subarray(at, at + 100).indexOf(0x5a);
    if (z < 0 || data[at + 156] === 0) continue;
    data[at + z] = raw[next++]!;
    fixChecksum(data, at);
  }
  return data;
}

async function index(label: string, tars: Uint8Array[], options: Parameters<typeof writeRawLayout>[3] = {}) {
  const dir = join(work, label);
  const layout = await writeRawLayout(dir, 'hostile', tars, options);
  const output = join(dir, 'out.clip');
  const result = await runCli(['index', layout.ref, '-o', output, '--storage-ref', STORAGE, '--no-progress'], { timeoutMs: 60_000 });
  return { ...result, output, layout };
}

describe('names and messages from hostile images', () => {
  it('refuses a layer with non-UTF-8 names instead of merging them into one file', async () => {
    const layer = tarWithRawBytes(
      [
        { name: 'etc/', typeflag: '5' },
        { name: 'etc/aZ', data: 'first\n' },
        { name: 'etc/aZ', data: 'second\n' },
      ],
      [0xff, 0xfe],
    );
    const result = await index('non-utf8', [layer]);
    expect(result.stderr).not.toMatch(/internal error/);
    // The first offending entry, its raw bytes escaped, and the layer digest.
    expect(result.stderr).toMatch(
      new RegExp(
        `clip: error: layer ${result.layout.layerDigests[0]}: entry "etc/a\\\\xff" at byte \\d+: name \\(or link target\\) is not valid UTF-8.* \\[CLIP_E_LAYER_FORMAT\\]`,
      ),
    );
    expect(result.code).toBe(1);
  });

  it('clip archive refuses a directory with non-UTF-8 names or link targets instead of merging them', async () => {
    const raw = (dir: string, ...bytes: number[]) => Buffer.concat([Buffer.from(`${dir}/a`), Buffer.from(bytes)]);
    const names = join(work, 'dir-names');
    await mkdir(join(names, 'etc'), { recursive: true });
    await writeFile(raw(join(names, 'etc'), 0xff), 'first\n');
    await writeFile(raw(join(names, 'etc'), 0xfe), 'second\n');
    const link = join(work, 'dir-link');
    await mkdir(link);
    await symlink(raw('t', 0xfe), join(link, 'l'));
    for (const [dir, message] of [
      [names, /entry "\/etc\/a\\xfe": name is not valid UTF-8/],
      [link, /entry "\/l -> t\/a\\xfe": link target is not valid UTF-8/],
    ] as const) {
      const result = await runCli(['archive', dir, '-o', join(work, 'dir.clip')], { timeoutMs: 60_000 });
      expect(result.stderr).not.toMatch(/internal error|\uFFFD/);
      expect(result.stderr).toMatch(message);
      expect(result.stderr).toMatch(/\[CLIP_E_LAYER_FORMAT\]/);
      expect(result.code).toBe(1);
    }
  });

  it('refuses non-UTF-8 in PAX paths, GNU long names and link targets too', async () => {
    const cases: Array<[string, RawMember[]]> = [
      ['pax', [{ name: 'x', data: 'x', pax: { path: new Uint8Array([0x65, 0x74, 0x63, 0x2f, 0xc3]) } }]],
      ['gnu', [{ name: `${'d'.repeat(120)}/Z`, data: 'x', gnuLongName: true }]],
      ['link', [{ name: 'etc/l', typeflag: '2', linkname: 'tZ' }]],
    ];
    for (const [label, members] of cases) {
      const data = tar(members);
      if (label !== 'pax') {
        // Patch the Z in the long-name body or the link name field.
        const z = label === 'gnu' ? data.indexOf(0x5a, 512) : data.indexOf(0x5a, 157);
        data[z] = 0xfe;
        if (label === 'link') fixChecksum(data, 0);
      }
      const result = await index(`non-utf8-${label}`, [data]);
      expect(result.stderr, label).toMatch(/is not valid UTF-8.*\[CLIP_E_LAYER_FORMAT\]/);
      expect(result.stderr, label).toMatch(/\\x(fe|c3)/);
      expect(result.code, label).toBe(1);
    }
  });

  it.each(['gzip', 'zstd'] as const)('names the layer when its %s stream is corrupt', async (compression) => {
    const big = tar([
      { name: 'etc/', typeflag: '5' },
      { name: 'etc/data', data: 'clip '.repeat(200_000) },
    ]);
    const result = await index(`${compression}-corrupt`, [big], {
      compression,
      mutateBlob: (blob) => {
        const copy = Uint8Array.from(blob);
        for (let i = 40; i < 80; i++) copy[i] = 0xaa;
        return copy;
      },
    });
    expect(result.stderr).not.toMatch(/internal error/);
    expect(result.stderr).toMatch(
      new RegExp(`clip: error: layer ${result.layout.layerDigests[0]}: ${compression} stream is corrupt.*\\[CLIP_E_LAYER_FORMAT\\]`),
    );
    expect(result.code).toBe(1);
  });

  it('clip ls escapes newlines and control bytes in names like ls -b', async () => {
    const layer = tar([
      { name: 'etc/', typeflag: '5' },
      { name: 'etc/two\nlines', data: 'x' },
      { name: 'etc/esc\x1b[31mred', data: 'x' },
      { name: 'etc/link', typeflag: '2', linkname: 'to\rhere' },
    ]);
    const result = await index('ls-escape', [layer]);
    expect(result.code, result.stderr).toBe(0);
    const short = await runCli(['ls', result.output, '/etc']);
    expect(short.stdout.toString().split('\n').filter(Boolean).sort()).toEqual(['esc\\033[31mred', 'link', 'two\\nlines']);
    const long = await runCli(['ls', result.output, '/etc', '-l']);
    expect(long.stdout.toString()).toContain('link -> to\\rhere');
    // No control bytes but the line ends.
    expect([...long.stdout].filter((byte) => byte < 0x20 && byte !== 0x0a)).toEqual([]);
  });

  it('never echoes a password given in a reference', async () => {
    const secret = 'S3cretPW-19';
    const mountpoint = await tempDir('mnt');
    const runs = [
      ['mount', `bob:${secret}@127.0.0.1:9/repo:tag`, mountpoint],
      ['inspect', `bob:${secret}@127.0.0.1:9/repo:tag`],
      ['pull-archive', `docker://bob:${secret}@127.0.0.1:9/repo:tag`, '-o', join(work, 'x.clip')],
      ['pull-archive', `https://bob:${secret}@127.0.0.1:9/repo:tag`, '-o', join(work, 'x.clip')],
      ['index', 'oci:/nonexistent', '--storage-ref', `bob:${secret}@127.0.0.1:9/repo:tag`, '-o', join(work, 'x.clip')],
      ['push', 'oci:/nonexistent', `bob:${secret}@127.0.0.1:9/repo:tag`],
      ['cat', `bob:${secret}@127.0.0.1:9/repo:tag`, '/etc/passwd'],
      ['ls', `bob:p@${secret}@127.0.0.1:9/repo:tag`],
    ];
    try {
      for (const args of runs) {
        const result = await runCli(args, { timeoutMs: 30_000 });
        expect(result.code, args.join(' ')).not.toBe(0);
        expect(result.stderr, args.join(' ')).toMatch(/clip: error: /);
        expect(result.stderr + result.stdout.toString(), args.join(' ')).not.toContain(secret);
        expect(result.stderr, args.join(' ')).toMatch(/bob:\*\*\*@|bob@|\*\*\*/);
      }
    } finally {
      await removeAll(mountpoint);
    }
  });

  it('never prints a password given in an archive URL, also when the command succeeds', async () => {
    const secret = 'S3cretURL-19';
    const src = join(work, 'url-src');
    await mkdir(join(src, 'etc'), { recursive: true });
    await writeFile(join(src, 'etc/hello'), 'hello\n');
    const built = await runCli(['archive', src, '-o', join(work, 'url.clip')]);
    expect(built.code, built.stderr).toBe(0);
    const bytes = await readFile(join(work, 'url.clip'));
    const server = createServer((_req, res) => res.end(bytes));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const url = `http://bob:${secret}@127.0.0.1:${(server.address() as { port: number }).port}/url.clip`;
    const mountpoint = await tempDir('mnt');
    try {
      for (const args of [
        ['inspect', url],
        ['inspect', url, '--json'],
        ['ls', '-l', url, '/etc'],
        ['cat', url, '/etc/hello'],
      ]) {
        const result = await runCli(args, { timeoutMs: 30_000 });
        expect(result.code, `${args.join(' ')}: ${result.stderr}`).toBe(0);
        expect(result.stderr + result.stdout.toString(), args.join(' ')).not.toContain(secret);
      }
      const mount = await startMount(url, mountpoint, ['--metrics', '127.0.0.1:0']);
      expect(await readFile(join(mountpoint, 'etc/hello'), 'utf8')).toBe('hello\n');
      await mount.stop();
      expect(mount.stderr()).not.toContain(secret);
    } finally {
      server.close();
      await removeAll(mountpoint);
    }
  });

  it('names a username without a password instead of "none were found"', async () => {
    const registry = await startRegistry({
      storageDir: join(work, 'auth-registry'),
      port: await freePort(),
      auth: { kind: 'htpasswd', users: [{ username: 'alice', password: 'pw-19' }] },
    });
    try {
      const result = await runCli(['pull-archive', `${registry.host}/repo:tag`, '-o', join(work, 'y.clip')], {
        env: { CLIP_REGISTRY_USERNAME: 'alice', CLIP_REGISTRY_PASSWORD: undefined, DOCKER_CONFIG: join(work, 'no-docker-config') },
      });
      expect(result.stderr).not.toMatch(/none were found/);
      expect(result.stderr).toMatch(/CLIP_REGISTRY_PASSWORD is not set/);
      expect(result.code).toBe(1);
      // The same half pair in a docker config.json entry (a username, no password, no auth).
      const dockerConfig = join(work, 'half-docker-config');
      await mkdir(dockerConfig, { recursive: true });
      await writeFile(join(dockerConfig, 'config.json'), JSON.stringify({ auths: { [registry.host]: { username: 'alice' } } }));
      const fromConfig = await runCli(['pull-archive', `${registry.host}/repo:tag`, '-o', join(work, 'y.clip')], {
        env: { CLIP_REGISTRY_USERNAME: undefined, CLIP_REGISTRY_PASSWORD: undefined, DOCKER_CONFIG: dockerConfig },
      });
      expect(fromConfig.stderr).not.toMatch(/none were found/);
      expect(fromConfig.stderr).toMatch(/a username without a password/);
      expect(fromConfig.code).toBe(1);
    } finally {
      await registry.stop();
    }
  });
});
