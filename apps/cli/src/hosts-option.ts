// `--hosts-dir <dir>`, shared by every command that reads a registry: containerd's hosts.toml
// directory (mirrors, pull-through caches). Default $CLIP_HOSTS_DIR, else
// /etc/containerd/certs.d when it exists; `--hosts-dir ''` turns mirrors off.
import { resolveHostsDir } from '@clip/registry-fetch/hosts/hosts-dir';

export const HOSTS_DIR_HELP = "containerd hosts.toml directory for registry mirrors (default $CLIP_HOSTS_DIR, else /etc/containerd/certs.d if it exists; '' for none)";

/** `{ hostsDir }` to spread into registry options, or `{}` when no hosts directory applies. */
export function hostsDirOption(options: { hostsDir?: string }): { hostsDir?: string } {
  const dir = resolveHostsDir(options.hostsDir);
  return dir ? { hostsDir: dir } : {};
}
