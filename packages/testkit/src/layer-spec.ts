// Declarative description of image layers for fixtures, and its translation to tar entries.
import type { LayerCompression } from '@clip/archive-format';
import type { FileContent } from './content.js';
import { contentBytes } from './content.js';
import type { TarEntrySpec } from './tar-writer.js';

export const DEFAULT_MTIME = 1_700_000_000; // 2023-11-14T22:13:20Z

interface EntryAttrs {
  /** Path inside the image, relative (`etc/passwd`); a leading `/` is ignored. */
  path: string;
  /** Permission bits incl. setuid/setgid/sticky. Defaults: files 0o644, dirs 0o755, devices/fifos 0o644. */
  mode?: number;
  uid?: number;
  gid?: number;
  uname?: string;
  gname?: string;
  /** Seconds since the epoch; default DEFAULT_MTIME. */
  mtime?: number;
  /** Nanoseconds part of the mtime: written as a PAX `mtime=<sec>.<nsec>` record when set. */
  mtimeNsec?: number;
  /** Written as PAX `SCHILY.xattr.<name>` records. */
  xattrs?: Record<string, string | Uint8Array>;
}

export type EntrySpec =
  | (EntryAttrs & { type: 'file'; content?: FileContent })
  | (EntryAttrs & { type: 'dir' })
  | (EntryAttrs & { type: 'symlink'; target: string })
  /** `target` is an image path (relative like `path`) of a file already present in this or a lower layer. */
  | (EntryAttrs & { type: 'hardlink'; target: string })
  | (EntryAttrs & { type: 'char' | 'block'; major: number; minor: number })
  | (EntryAttrs & { type: 'fifo' })
  /** Deletes `path` from lower layers: written as `<dir>/.wh.<name>`. */
  | { type: 'whiteout'; path: string }
  /** Hides everything lower layers put under directory `path`: written as `<path>/.wh..wh..opq`. */
  | { type: 'opaque'; path: string };

export type { LayerCompression };

export interface LayerSpec {
  compression: LayerCompression;
  entries: EntrySpec[];
  /** Prefix of tar names: '' (default, like most builders) or './' (like `tar -C dir .`). */
  namePrefix?: '' | './';
  /** gzip level (node:zlib), default 6. */
  gzipLevel?: number;
  /** gzip only: start a new gzip member every this many uncompressed bytes (multi-member, like pigz -i / bgzip). */
  gzipMemberSize?: number;
  /** zstd level (zstd CLI), default 3. */
  zstdLevel?: number;
  /** zstd only: start a new zstd frame every this many uncompressed bytes (concatenated frames). */
  zstdFrameSize?: number;
}

export function normalizePath(path: string): string {
  const parts = path.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.some((p) => p === '..')) throw new Error(`fixture path must not contain '..': ${path}`);
  return parts.join('/');
}

function splitDir(path: string): { dir: string; name: string } {
  const i = path.lastIndexOf('/');
  return i < 0 ? { dir: '', name: path } : { dir: path.slice(0, i), name: path.slice(i + 1) };
}

function join(dir: string, name: string): string {
  return dir === '' ? name : `${dir}/${name}`;
}

/** Translates one layer spec into tar entries, in spec order. */
export function layerTarEntries(layer: LayerSpec): TarEntrySpec[] {
  const prefix = layer.namePrefix ?? '';
  const named = (path: string, dir = false) => {
    const p = normalizePath(path);
    if (p === '') return './';
    return `${prefix}${p}${dir ? '/' : ''}`;
  };
  // biome-ignore lint/suspicious/useIterableCallbackReturn: the switch below is exhaustive (TypeScript checks it)
  return layer.entries.map((entry): TarEntrySpec => {
    if (entry.type === 'whiteout') {
      const { dir, name } = splitDir(normalizePath(entry.path));
      return { name: named(join(dir, `.wh.${name}`)), type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: DEFAULT_MTIME };
    }
    if (entry.type === 'opaque') {
      return {
        name: named(join(normalizePath(entry.path), '.wh..wh..opq')),
        type: 'file',
        mode: 0o644,
        uid: 0,
        gid: 0,
        mtime: DEFAULT_MTIME,
      };
    }
    const pax: Record<string, Uint8Array | string> = {};
    if (entry.mtimeNsec !== undefined) {
      pax.mtime = `${entry.mtime ?? DEFAULT_MTIME}.${String(entry.mtimeNsec).padStart(9, '0')}`;
    }
    for (const [key, value] of Object.entries(entry.xattrs ?? {})) pax[`SCHILY.xattr.${key}`] = value;
    const base = {
      mode: entry.mode ?? (entry.type === 'dir' ? 0o755 : entry.type === 'symlink' ? 0o777 : 0o644),
      uid: entry.uid ?? 0,
      gid: entry.gid ?? 0,
      mtime: entry.mtime ?? DEFAULT_MTIME,
      ...(entry.uname !== undefined ? { uname: entry.uname } : {}),
      ...(entry.gname !== undefined ? { gname: entry.gname } : {}),
      ...(Object.keys(pax).length > 0 ? { pax } : {}),
    };
    switch (entry.type) {
      case 'file':
        return { ...base, name: named(entry.path), type: 'file', data: contentBytes(entry.content) };
      case 'dir':
        return { ...base, name: named(entry.path, true), type: 'directory' };
      case 'symlink':
        return { ...base, name: named(entry.path), type: 'symlink', linkname: entry.target };
      case 'hardlink':
        return { ...base, name: named(entry.path), type: 'hardlink', linkname: named(entry.target) };
      case 'char':
      case 'block':
        return { ...base, name: named(entry.path), type: entry.type, devmajor: entry.major, devminor: entry.minor };
      case 'fifo':
        return { ...base, name: named(entry.path), type: 'fifo' };
    }
  });
}
