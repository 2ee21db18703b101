// `clip snapshotter` argument handling: bad input is a usage error (exit 2) naming the
// problem, and the server answers on its socket and stops cleanly on SIGTERM.
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as grpc from '@grpc/grpc-js';
import { CLI } from './harness.js';
import { snapshotsClient } from './grpc-client.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'clip-snap-cli-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function clip(args: string[]): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('close', (code) => resolve({ code, stderr }));
  });
}

describe('clip snapshotter', () => {
  it('refuses a config file with unknown keys, and bad numbers, with exit code 2', async () => {
    const config = join(dir, 'bad.json');
    await writeFile(config, JSON.stringify({ root: dir, snapshotter: 'x' }));
    const bad = await clip(['snapshotter', '--config', config]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/unknown key "snapshotter"/);
    const retries = await clip(['snapshotter', '--root', dir, '--retries', 'many']);
    expect(retries.code).toBe(2);
    expect(retries.stderr).toMatch(/invalid --retries "many"/);
  });

  it('a corrupt or newer metadata.json in the root is a clear error (exit 1), not a crash (exit 70)', async () => {
    for (const [name, text, message] of [
      ['corrupt', '{"version":1,', /metadata\.json is not valid JSON/],
      ['newer', JSON.stringify({ version: 2, nextId: 1, snapshots: [] }), /unsupported metadata version 2/],
    ] as const) {
      const root = join(dir, `root-${name}`);
      await mkdir(root, { recursive: true });
      await writeFile(join(root, 'metadata.json'), text);
      const result = await clip(['snapshotter', '--root', root, '--address', join(dir, `${name}.sock`), '--state-dir', join(dir, 'state')]);
      expect(result.code).toBe(1);
      expect(result.stderr).toMatch(message);
      expect(result.stderr).toMatch(/CLIP_E_SNAPSHOTTER_ROOT/);
      expect(result.stderr).not.toMatch(/internal error|\n\s+at /);
    }
  });

  it('serves on its socket from a config file, answers, and removes the socket on SIGTERM', async () => {
    const socket = join(dir, 's.sock');
    const config = join(dir, 'good.json');
    await writeFile(config, JSON.stringify({ address: socket, root: join(dir, 'root'), stateDir: join(dir, 'state') }));
    const child = spawn(process.execPath, [CLI, 'snapshotter', '--config', config], { stdio: 'ignore' });
    try {
      for (
        let i = 0;
        i < 300 &&
        !(await stat(socket).then(
          () => true,
          () => false,
        ));
        i++
      )
        await sleep(100);
      const client = snapshotsClient(socket);
      const prepared = await client.call('Prepare', { key: 'a', parent: '' });
      expect(prepared.code).toBe(0);
      // Usage counts what was written into the snapshot (containerd's unpack, a container's writes).
      const [mount] = (prepared.response?.['mounts'] ?? []) as Array<{ source: string }>;
      await writeFile(join(mount?.source ?? '', 'written.bin'), Buffer.alloc(100_000, 7));
      const active = (await client.call('Usage', { key: 'a' })).response as { size: number; inodes: number };
      expect(active.size).toBeGreaterThanOrEqual(100_000);
      expect(active.inodes).toBe(2);
      expect((await client.call('Commit', { key: 'a', name: 'c' })).code).toBe(0);
      expect((await client.call('Usage', { key: 'c' })).response).toEqual(active);
      expect((await client.call('Usage', { key: 'a' })).code).toBe(grpc.status.NOT_FOUND);
      // Cleanup deletes a directory no snapshot owns (a crash between mkdir and the metadata write).
      const orphan = join(dir, 'root', 'snapshots', '999');
      await mkdir(orphan, { recursive: true });
      expect((await client.call('Cleanup', {})).code).toBe(0);
      expect(await readdir(join(dir, 'root', 'snapshots'))).toHaveLength(1);
      expect(await readFile(join(dirname(mount?.source ?? ''), 'fs', 'written.bin'))).toHaveLength(100_000);
      expect((await client.call('Stat', { key: 'c' })).response).toMatchObject({ info: { name: 'c', kind: 'COMMITTED' } });
      expect((await client.call('Stat', { key: 'a' })).code).toBe(grpc.status.NOT_FOUND);
      client.close();
    } finally {
      child.kill('SIGTERM');
      await new Promise((resolve) => child.once('exit', resolve));
    }
    expect(child.exitCode).toBe(0);
    expect(
      await stat(socket).then(
        () => true,
        () => false,
      ),
    ).toBe(false);
  });
});
