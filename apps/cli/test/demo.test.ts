// The demo drives the built clip command, so its test lives with the cli (built before its tests).
import { readFile, stat } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { runDemo } from '@clip/testkit';

describe('demo', () => {
  it('runs every step and removes what it created', async () => {
    const lines: string[] = [];
    await runDemo('basic', (line) => lines.push(line));
    const output = lines.join('\n');
    expect(output).toMatch(/digests identical to the layout/);
    expect(output).toMatch(/cached source image reference from metadata/);
    expect(output).toMatch(/\d+ files, .* byte-for-byte identical/);
    expect(output).toMatch(/correct; fetched \d[^?]* of the /); // one small file, bytes from the metrics endpoint
    expect(output).toMatch(/^done in /m);
    const registryUrl = /serving (http:\/\/127\.0\.0\.1:\d+)/.exec(output)?.[1];
    const layoutDir = /oci:(\/[^:]+):basic/.exec(output)?.[1];
    if (!registryUrl || !layoutDir) throw new Error(`unexpected demo output:\n${output}`);
    await expect(fetch(`${registryUrl}/v2/`)).rejects.toThrow(); // registry stopped
    await expect(stat(layoutDir)).rejects.toThrow(/ENOENT/); // work directory removed
    expect(await readFile('/proc/mounts', 'utf8')).not.toContain(layoutDir.replace(/\/layout$/, '')); // unmounted
  });
});
