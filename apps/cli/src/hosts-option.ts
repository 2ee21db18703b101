// `--hosts-dir <dir>`, shared by every command that reads a registry: containerd's hosts.toml
// directory (mirrors, pull-through caches). Default $CLIP_HOSTS_DIR, else
// /etc/containerd/certs.d when it exists; `--hosts-dir ''` turns mirrors off.
import { statSync } from 'node:fs';
import { UsageError, resolveHostsDir } from '@clip/shared';

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

export const HOSTS_DIR_HELP =
  "containerd hosts.toml directory for registry mirrors (default $CLIP_HOSTS_DIR, else /etc/containerd/certs.d if it exists; '' for none)";

/** `{ hostsDir }` to spread into registry options, or `{}` when no hosts directory applies. */
export function hostsDirOption(options: { hostsDir?: string }): { hostsDir?: string } {
  const dir = resolveHostsDir(options.hostsDir);
  // A directory named explicitly (flag or CLIP_HOSTS_DIR) that is not there is a mistake, not "no mirrors".
  if (dir && !isDirectory(dir))
    throw new UsageError(
      `hosts directory ${dir} (${options.hostsDir !== undefined ? '--hosts-dir' : 'CLIP_HOSTS_DIR'}) is not a directory`,
    );
  return dir ? { hostsDir: dir } : {};
}
