// Reads a real directory (umoci rootfs, FUSE mount) into a Tree. Only async fs calls and
// child processes: the FUSE server under test may run in this same process, so a
// synchronous syscall on its mount would deadlock.
// Decodes modes, dev_t and getfattr output itself, like the indexer's data-archive/directory-input.ts
// (duplicates lists the pair): a test oracle must not share the code it checks.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { lstat, readdir, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { FileType } from '@clip/archive-format';
import { forEachConcurrent } from '@clip/shared';
import type { Tree, TreeNode } from './tree.js';

export interface ReadTreeOptions {
  /** Read xattrs with `getfattr` (default true). */
  xattrs?: boolean;
  /** Hash regular files (default true). */
  hash?: boolean;
  /** Files hashed at once (default 8). */
  concurrency?: number;
}

function fileType(mode: number): FileType {
  switch (mode & 0o170000) {
    case 0o100000:
      return 'file';
    case 0o040000:
      return 'directory';
    case 0o120000:
      return 'symlink';
    case 0o020000:
      return 'char';
    case 0o060000:
      return 'block';
    case 0o010000:
      return 'fifo';
    default:
      return 'socket';
  }
}

/** Linux dev_t → major/minor (glibc encoding). */
export function splitRdev(rdev: bigint): { major: number; minor: number } {
  const major = Number(((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn));
  const minor = Number((rdev & 0xffn) | ((rdev >> 12n) & ~0xffn));
  return { major, minor };
}

async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 1024 * 1024 })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** Decodes getfattr's escaping of file names (`\ooo` octal, `\\`). */
function unescapeGetfattr(name: string): string {
  const bytes: number[] = [];
  const raw = Buffer.from(name, 'utf8');
  for (let i = 0; i < raw.length; i++) {
    const c = raw[i] as number;
    if (c === 0x5c && i + 3 < raw.length + 0 && /^[0-7]{3}$/.test(raw.subarray(i + 1, i + 4).toString('latin1'))) {
      bytes.push(parseInt(raw.subarray(i + 1, i + 4).toString('latin1'), 8));
      i += 3;
    } else if (c === 0x5c && raw[i + 1] === 0x5c) {
      bytes.push(0x5c);
      i += 1;
    } else {
      bytes.push(c);
    }
  }
  return Buffer.from(bytes).toString('utf8');
}

function run(command: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => out.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => err.push(chunk));
    child.once('error', reject);
    child.once('close', (code) =>
      resolve({ code: code ?? -1, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') }),
    );
  });
}

/**
 * All xattrs under `root` (one `getfattr -R` run, symlinks not followed), keyed by path
 * relative to root (`/` for root itself), values hex.
 */
export async function readXattrs(root: string): Promise<Map<string, Record<string, string>>> {
  const result = await run('getfattr', ['-R', '-P', '-h', '-d', '-m', '-', '-e', 'hex', '--absolute-names', root]).catch((error: Error) => {
    throw new Error(`cannot run getfattr (install the attr package): ${error.message}`);
  });
  // Files without xattr support (ENOTSUP) just have none; any other complaint is an error.
  const problems = result.stderr.split('\n').filter((line) => line.trim() !== '' && !/Operation not supported/.test(line));
  if (result.code !== 0 && problems.length > 0) throw new Error(`getfattr failed on ${root}: ${problems.join('\n')}`);
  const out = new Map<string, Record<string, string>>();
  const base = root.replace(/\/+$/, '');
  let current: Record<string, string> | undefined;
  for (const line of result.stdout.split('\n')) {
    if (line.startsWith('# file: ')) {
      const path = unescapeGetfattr(line.slice('# file: '.length));
      const rel = path === base ? '/' : path.startsWith(`${base}/`) ? path.slice(base.length) : path;
      current = {};
      out.set(rel, current);
      continue;
    }
    const eq = line.indexOf('=');
    if (!current || eq < 0) continue;
    const value = line.slice(eq + 1);
    current[unescapeGetfattr(line.slice(0, eq))] = value.startsWith('0x')
      ? value.slice(2).toLowerCase()
      : Buffer.from(value.replace(/^"|"$/g, '')).toString('hex');
  }
  return out;
}

/**
 * Walks `root` (not following symlinks) into a Tree: lstat, readlink, sha256 of regular
 * files, xattrs, device numbers, nlink, and hardlink groups from inode numbers.
 */
export async function readTree(root: string, options: ReadTreeOptions = {}): Promise<Tree> {
  const nodes = new Map<string, TreeNode>();
  const inodes = new Map<string, string>(); // path → dev:ino
  const files: Array<{ path: string; abs: string }> = [];

  const visit = async (rel: string, absPath: string): Promise<void> => {
    const st = await lstat(absPath, { bigint: true });
    const mode = Number(st.mode);
    const type = fileType(mode);
    const node: TreeNode = {
      type,
      mode: type === 'symlink' ? 0o777 : mode & 0o7777,
      uid: Number(st.uid),
      gid: Number(st.gid),
      xattrs: {},
      mtime: Number(st.mtimeMs / 1000n),
      nlink: Number(st.nlink),
    };
    if (type === 'file') {
      node.size = Number(st.size);
      files.push({ path: rel, abs: absPath });
    } else if (type === 'symlink') {
      const target = await readlink(absPath, { encoding: 'buffer' });
      node.linkTarget = target.toString('utf8');
      node.size = Number(st.size);
    } else if (type === 'char' || type === 'block') {
      const { major, minor } = splitRdev(st.rdev);
      node.rdevMajor = major;
      node.rdevMinor = minor;
    }
    nodes.set(rel, node);
    if (type !== 'directory') inodes.set(rel, `${st.dev}:${st.ino}`);
    if (type === 'directory') {
      const names = await readdir(absPath);
      names.sort();
      for (const name of names) await visit(rel === '/' ? `/${name}` : `${rel}/${name}`, join(absPath, name));
    }
  };
  await visit('/', root);

  if (options.hash ?? true) {
    await forEachConcurrent(files, options.concurrency ?? 8, async (item) => {
      const node = nodes.get(item.path);
      if (node) node.sha256 = await sha256File(item.abs);
    });
  }

  if (options.xattrs ?? true) {
    for (const [path, xattrs] of await readXattrs(root)) {
      const node = nodes.get(path);
      if (node) node.xattrs = xattrs;
    }
  }

  // Hardlink groups: paths sharing dev:ino.
  const groups = new Map<string, string[]>();
  for (const [path, id] of inodes) {
    const group = groups.get(id);
    if (group) group.push(path);
    else groups.set(id, [path]);
  }
  for (const members of groups.values()) {
    if (members.length < 2) continue;
    members.sort();
    for (const path of members) {
      const node = nodes.get(path);
      if (node) node.hardlinkGroup = members[0];
    }
  }

  const tree: Tree = new Map();
  for (const path of [...nodes.keys()].sort()) {
    const node = nodes.get(path);
    if (node) tree.set(path, node);
  }
  return tree;
}
