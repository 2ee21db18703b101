// Issue #19 part 4: several processes sharing one disk cache keep its --cache-size bound
// between them (each used to count only its own writes), and a file system smaller than the
// bound makes the cache evict instead of only warning. Real processes (the built package),
// real small tmpfs file systems.
import { execFile, spawn } from 'node:child_process';
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const CHILD = new URL('./disk-cache-child.mjs', import.meta.url).pathname;
const MiB = 2 ** 20;
const ENTRY = 256 * 1024;
/** Header + key of one entry, beyond its payload. */
const ENTRY_FILE = ENTRY + 100;

let mounted: string | undefined;
afterEach(async () => {
  if (mounted) {
    await run('umount', ['-l', mounted]).catch(() => {});
    await rm(mounted, { recursive: true, force: true });
    mounted = undefined;
  }
});

async function smallFileSystem(bytes: number): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'clip-cache-fs-'));
  await run('mount', ['-t', 'tmpfs', '-o', `size=${bytes}`, 'clip-cache-test', dir]);
  mounted = dir;
  return dir;
}

/** Bytes of cache entries (what the bound is about) under dir. */
async function entryBytes(dir: string): Promise<number> {
  let total = 0;
  for (const shard of await readdir(dir)) {
    const names = await readdir(join(dir, shard)).catch(() => [] as string[]);
    for (const name of names) total += (await stat(join(dir, shard, name))).size;
  }
  return total;
}

interface ChildResult {
  written: number;
  readBack: number;
  wrong: number;
  warnings: number;
  stderr: string;
}

function writer(dir: string, maxBytes: number, entries: number, name: string): Promise<ChildResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CHILD, dir, String(maxBytes), String(entries), String(ENTRY), name], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.once('close', (code) => {
      clearTimeout(timer);
      if (code !== 0) return reject(new Error(`writer ${name} exited with ${code}:\n${stderr}`));
      resolve({ ...(JSON.parse(stdout) as Omit<ChildResult, 'stderr'>), stderr });
    });
  });
}

describe('disk cache shared by processes', () => {
  it('keeps the bound across three processes writing at once', async () => {
    const fs = await smallFileSystem(40 * MiB);
    const cache = join(fs, 'cache');
    const bound = 8 * MiB;
    // Each writes 18 MiB: over twice the bound alone, 6x together.
    const results = await Promise.all(['a', 'b', 'c'].map((name) => writer(cache, bound, 72, name)));
    for (const result of results) {
      expect(result.wrong).toBe(0);
      expect(result.warnings, result.stderr).toBe(0);
    }
    expect(results.reduce((n, r) => n + r.readBack, 0)).toBeGreaterThan(0);
    const bytes = await entryBytes(cache);
    console.info(`three writers, 8 MiB bound: ${bytes} bytes of entries; read back ${results.map((r) => r.readBack).join('/')}`);
    expect(bytes).toBeLessThanOrEqual(bound);
    // And it was used, not emptied.
    expect(bytes).toBeGreaterThan(bound / 2);
  });

  it('evicts on a full file system (bound larger than the disk) and keeps working', async () => {
    const fs = await smallFileSystem(6 * MiB);
    const cache = join(fs, 'cache');
    const results = await Promise.all(['a', 'b'].map((name) => writer(cache, 4 * 2 ** 30, 60, name)));
    for (const result of results) {
      expect(result.wrong).toBe(0);
      // A warning per process when the disk first fills, not one per write.
      expect(result.warnings, result.stderr).toBeLessThanOrEqual(3);
      expect(result.readBack).toBeGreaterThan(0);
    }
    const bytes = await entryBytes(cache);
    console.info(`two writers, 4 GiB bound, 6 MiB disk: ${bytes} bytes of entries; warnings ${results.map((r) => r.warnings).join('/')}`);
    expect(bytes).toBeLessThanOrEqual(6 * MiB);
    expect(bytes).toBeGreaterThan(ENTRY_FILE);
  });
});
