// Smoke test: the quick mode on the smallest image completes and writes a well-formed result.
// A correctness check only; it asserts nothing about speed.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const benchDir = fileURLToPath(new URL('..', import.meta.url));
const isRoot = process.getuid?.() === 0;
const outDir = mkdtempSync(join(tmpdir(), 'clipbench-test-'));

afterAll(() => rmSync(outDir, { recursive: true, force: true }));

describe.skipIf(!isRoot)('bench --quick', () => {
  it('writes JSON, Markdown and SVG with the expected shape', { timeout: 180_000 }, () => {
    // BENCH_DIST: build elsewhere than dist/ while another benchmark runs from dist/.
    const dist = process.env['BENCH_DIST'] ?? 'dist';
    execFileSync('npx', ['tsc', '-p', 'tsconfig.json', '--outDir', dist], { cwd: benchDir, stdio: 'inherit' });
    const result = spawnSync(
      process.execPath,
      [join(benchDir, dist, 'main.js'), '--quick', '--images', 'synthetic-quick', '--out', outDir],
      {
        encoding: 'utf8',
        timeout: 170_000,
      },
    );
    expect(result.status, result.stderr).toBe(0);
    expect(result.stdout).toContain('| scenario |');

    const files = readdirSync(outDir);
    const jsonFile = files.find((file) => file.endsWith('.json'));
    expect(jsonFile).toBeDefined();
    expect(files.some((file) => file.endsWith('.md'))).toBe(true);
    for (const svg of files.filter((file) => file.endsWith('.svg'))) {
      expect(readFileSync(join(outDir, svg), 'utf8')).toMatch(/^<svg [^>]*>[\s\S]*<\/svg>\n$/);
    }

    const results = JSON.parse(readFileSync(join(outDir, jsonFile!), 'utf8')) as Record<string, unknown>;
    for (const key of [
      'version',
      'date',
      'mode',
      'command',
      'machine',
      'profiles',
      'linkChecks',
      'shaping',
      'images',
      'rows',
      'durationSeconds',
    ]) {
      expect(results).toHaveProperty(key);
    }
    expect(results['mode']).toBe('quick');
    const linkChecks = results['linkChecks'] as { measuredMbit: number }[];
    expect(linkChecks.length).toBeGreaterThan(0);
    for (const check of linkChecks) expect(check.measuredMbit).toBeGreaterThan(0);

    const rows = results['rows'] as Record<string, unknown>[];
    // Here every prerequisite is built and installed, so a skipped row means a clip step failed.
    expect(
      rows.filter((row) => row['skipped'] !== undefined).map((row) => `${String(row['scenario'])}: ${String(row['skipped'])}`),
    ).toEqual([]);
    const scenarios = new Set(rows.map((row) => row['scenario']));
    for (const scenario of ['start + workload', 'indexing', 'mount I/O', 'ranged reads', 'publish', 'scale'])
      expect(scenarios).toContain(scenario);
    const variants = rows.map((row) => `${String(row['scenario'])}: ${String(row['variant'])}`);
    const expected = [
      'indexing: registry / local',
      'mount I/O: first read ',
      'mount I/O: read .* again \\(warm: same mount\\)',
      'mount I/O: .*warm disk',
      'mount I/O: sequential read .* \\(cold\\), link use',
      'mount I/O: mounter peak RSS',
      'publish: clip publish vs clip push then clip index',
      'publish: clip publish vs max\\(push, index\\)',
      ...['10000', '100000'].flatMap((files) =>
        ['clip index', 'index peak RSS', 'archive size', 'open \\+ lookup of a deep path', 'cold start: read one small file'].map(
          (what) => `scale: ${what}, ${files} files`,
        ),
      ),
    ];
    for (const pattern of expected)
      expect(
        variants.some((variant) => new RegExp(`^${pattern}`).test(variant)),
        pattern,
      ).toBe(true);
    for (const row of rows.filter((r) => String(r['variant']).startsWith('archive size'))) {
      expect((row['details'] as Record<string, unknown>)['percentOfUncompressed']).toBeGreaterThan(0);
    }
    for (const image of results['images'] as Record<string, unknown>[]) expect(image['archivePercentOfUncompressed']).toBeGreaterThan(0);
    expect(files.some((file) => file.endsWith('-scale-bytes.svg'))).toBe(true);
    for (const row of rows) {
      expect(typeof row['scenario']).toBe('string');
      expect(typeof row['variant']).toBe('string');
      // A row either measured its baseline or says why it was skipped.
      if (row['skipped'] === undefined) expect(Number.isFinite(row['baseline'])).toBe(true);
      else expect(typeof row['skipped']).toBe('string');
      for (const key of ['baseline', 'clip', 'ratio']) {
        if (row[key] !== undefined) {
          expect(Number.isFinite(row[key])).toBe(true);
          expect(row[key] as number).toBeGreaterThan(0);
        }
      }
    }

    // Nothing left behind: no namespace of ours, no mounts under our work directory (another
    // benchmark may be running on this machine, with its own clipbench-<pid>).
    const namespaces = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' });
    expect(namespaces).not.toContain(`clipbench-${result.pid}`);
    expect(readFileSync('/proc/mounts', 'utf8')).not.toContain(`clipbench-${result.pid}/`);
  });
});
