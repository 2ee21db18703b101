// Turns a tar member name into a safe path relative to the image root. Layers come from
// untrusted registries, so anything that could escape the root is refused, not cleaned up.

/** Why a name is refused, or the normalised path (`''` is the root). */
export type NormalisedPath = { ok: true; path: string } | { ok: false; reason: string };

export function normaliseEntryPath(name: string): NormalisedPath {
  if (isNormal(name)) return { ok: true, path: name };
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

/** Already normal (the common case): no empty, `.` or `..` component and no NUL. */
function isNormal(name: string): boolean {
  if (name === '') return true;
  let start = 0;
  for (let i = 0; i <= name.length; i++) {
    const code = i === name.length ? 47 : name.charCodeAt(i);
    if (code === 0) return false;
    if (code !== 47) continue;
    const length = i - start;
    if (length === 0) return false;
    if (name.charCodeAt(start) === 46 && (length === 1 || (length === 2 && name.charCodeAt(start + 1) === 46))) return false;
    start = i + 1;
  }
  return true;
}
