// Which containerd hosts directory applies: `--hosts-dir`, else $CLIP_HOSTS_DIR, else
// containerd's default /etc/containerd/certs.d when it exists. An empty value turns mirrors off.
// Here, not in @clip/registry-fetch, so the CLI resolves its flags without loading HTTP clients.
import { statSync } from 'node:fs';

export const DEFAULT_HOSTS_DIR = '/etc/containerd/certs.d';

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

/** The hosts directory to use, or undefined for none (no mirrors: the registry itself). */
export function resolveHostsDir(
  flag: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
  fallback = DEFAULT_HOSTS_DIR,
): string | undefined {
  if (flag !== undefined) return flag === '' ? undefined : flag;
  const fromEnv = env['CLIP_HOSTS_DIR'];
  if (fromEnv !== undefined) return fromEnv === '' ? undefined : fromEnv;
  return isDirectory(fallback) ? fallback : undefined;
}
