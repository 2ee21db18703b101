// pruneContainers reads other clip runs' owner files without a lock: a file being written
// (empty, partial) means "someone is starting", never a crash; a dead owner is cleaned up.
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { pruneContainers } from '../src/container.js';
import { ImageMountPool } from '../src/mount-pool.js';
import { OciRuntime } from '../src/oci-runtime.js';

let stateDir: string;
beforeAll(async () => {
  stateDir = await mkdtemp(join(tmpdir(), 'clip-prune-'));
});
afterAll(async () => rm(stateDir, { recursive: true, force: true }));

it('skips containers whose owner file is missing, empty or partial, or whose clip run lives; removes dead ones', async () => {
  const containers = join(stateDir, 'containers');
  const owners: Record<string, string | undefined> = {
    starting: undefined,
    empty: '',
    partial: '{"pid": 12',
    alive: JSON.stringify({ pid: process.pid }),
    dead: JSON.stringify({ pid: 2 ** 22 + 1 }), // above pid_max: never a live process
  };
  for (const [id, text] of Object.entries(owners)) {
    await mkdir(join(containers, id), { recursive: true });
    if (text !== undefined) await writeFile(join(containers, id, 'clip-run.json'), text);
  }
  const pool = new ImageMountPool({ stateDir });
  const pruned = await pruneContainers(pool, new OciRuntime({ root: join(stateDir, 'runtime') }));
  expect(pruned).toEqual(['dead']);
  for (const id of ['starting', 'empty', 'partial', 'alive']) expect(existsSync(join(containers, id))).toBe(true);
  expect(existsSync(join(containers, 'dead'))).toBe(false);
});
