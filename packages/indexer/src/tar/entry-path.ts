// Turns a tar member name into a safe path relative to the image root. Layers come from
// untrusted registries, so anything that could escape the root is refused, not cleaned up.

/** Why a name is refused, or the normalised path (`''` is the root). */
export type NormalisedPath = { ok: true; path: string } | { ok: false; reason: string };

export function normaliseEntryPath(name: string): NormalisedPath {
  if (name.includes('\0')) return { ok: false, reason: 'name contains a NUL byte' };
  const parts: string[] = [];
  for (const part of name.split('/')) {
    // Empty parts come from leading, doubled or trailing slashes; '.' from `./` prefixes.
    if (part === '' || part === '.') continue;
    if (part === '..') return { ok: false, reason: 'name has a ".." component' };
    parts.push(part);
  }
  return { ok: true, path: parts.join('/') };
}
