// Debian root filesystems built with mmdebstrap (minbase + packages), cached. Uses the host's
// apt sources (the only mirrors reachable here).
import { join } from 'node:path';
import { run } from '../util/exec.js';
import { cachedDir } from './cache.js';

export interface DebianSpec {
  name: string;
  suite: string;
  packages: string[];
}

export async function ensureDebianRootfs(spec: DebianSpec): Promise<string> {
  const { dir } = await cachedDir('rootfs', spec.name, spec, async (target) => {
    const include = spec.packages.length > 0 ? [`--include=${spec.packages.join(',')}`] : [];
    await run('mmdebstrap', ['--variant=minbase', ...include, spec.suite, join(target, 'rootfs')], { timeoutMs: 30 * 60_000 });
    return { built: new Date().toISOString() };
  });
  return join(dir, 'rootfs');
}
