// A directory tree as archive tables: lstat walk (symlinks never followed), names sorted by
// bytes, inodes numbered in walk order (parents first), hardlinks by (dev, ino), xattrs from
// one `getfattr -R` run, mtimes to the nanosecond.
import { spawn } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { lstat, readdir, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { FileType, Inode } from '@clip/archive-format';
import { ClipError, escapeBytes, IoError, LayerFormatError, UsageError } from '@clip/shared';
import { decodeUtf8Name, NonUtf8NameError } from '../tar/utf8-name.js';
import type { ContentSink, InputTables } from './content-sink.js';

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
function splitRdev(rdev: bigint): { major: number; minor: number } {
  return {
    major: Number(((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn)),
    minor: Number((rdev & 0xffn) | ((rdev >> 12n) & ~0xffn)),
  };
}

/**
 * UTF-8 text of a file name (in directory `dir`) or of the link target of `dir` (a symlink),
 * or a typed refusal: decoding with U+FFFD would turn `a\xff` and `a\xfe` into one name
 * (as in tar layers, see tar/utf8-name.ts).
 */
function utf8Name(root: string, dir: string, bytes: Buffer, what: 'name' | 'link target' = 'name'): string {
  try {
    return decodeUtf8Name(bytes);
  } catch (error) {
    if (!(error instanceof NonUtf8NameError)) throw error;
    const entry = what === 'name' ? `${dir === '/' ? '' : dir}/${escapeBytes(bytes)}` : `${dir} -> ${escapeBytes(bytes)}`;
    throw new LayerFormatError(
      `directory ${root}: entry "${entry}": ${what} is not valid UTF-8; ` +
        'clip keeps names as UTF-8 text and refuses the input rather than merge such names',
    );
  }
}

function ioError(what: string, error: unknown): ClipError {
  return new IoError(`${what}: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
}

/** getfattr escapes bytes of file names as `\ooo` and `\` as `\\`. */
function unescapeGetfattr(text: string): Buffer {
  const raw = Buffer.from(text, 'utf8');
  const out: number[] = [];
  for (let i = 0; i < raw.length; i++) {
    const c = raw[i]!;
    const octal = raw.subarray(i + 1, i + 4).toString('latin1');
    if (c === 0x5c && /^[0-7]{3}$/.test(octal)) {
      out.push(parseInt(octal, 8));
      i += 3;
    } else if (c === 0x5c && raw[i + 1] === 0x5c) {
      out.push(0x5c);
      i += 1;
    } else {
      out.push(c);
    }
  }
  return Buffer.from(out);
}

/** Every xattr under `root` (symlinks not followed), by absolute path. */
export async function readAllXattrs(root: string): Promise<Map<string, Record<string, Uint8Array>>> {
  const { code, stdout, stderr } = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve, reject) => {
    const child = spawn('getfattr', ['-R', '-P', '-h', '-d', '-m', '-', '-e', 'hex', '--absolute-names', root], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => out.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => err.push(chunk));
    child.once('error', (error) => reject(ioError('cannot run getfattr (install the attr package)', error)));
    child.once('close', (exit) =>
      resolve({ code: exit ?? -1, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') }),
    );
  });
  const problems = stderr.split('\n').filter((line) => line.trim() !== '' && !/Operation not supported/.test(line));
  if (code !== 0 && problems.length > 0) throw new IoError(`getfattr failed on ${root}: ${problems.join('; ')}`);
  const result = new Map<string, Record<string, Uint8Array>>();
  let current: Record<string, Uint8Array> | undefined;
  for (const line of stdout.split('\n')) {
    if (line.startsWith('# file: ')) {
      current = {};
      result.set(unescapeGetfattr(line.slice('# file: '.length)).toString('utf8'), current);
      continue;
    }
    if (!current || line === '' || line.startsWith('#')) continue;
    const eq = line.indexOf('=');
    const name = unescapeGetfattr(eq < 0 ? line : line.slice(0, eq)).toString('utf8');
    const value = eq < 0 ? '' : line.slice(eq + 1);
    current[name] = value.startsWith('0x')
      ? new Uint8Array(Buffer.from(value.slice(2), 'hex'))
      : new Uint8Array(Buffer.from(value.replace(/^"|"$/g, '')));
  }
  return result;
}

export interface DirectoryInput {
  tables: InputTables;
  /** Streams every regular file with data into the sink (inode order). */
  writeContents(sink: ContentSink): Promise<void>;
}

export async function readDirectoryInput(root: string, options: { xattrs?: boolean } = {}): Promise<DirectoryInput> {
  const inodes: Inode[] = [];
  const entries: { path: string; ino: number }[] = [];
  const absolute = new Map<number, string>();
  const byDevIno = new Map<string, Inode>();
  const xattrs = options.xattrs === false ? new Map<string, Record<string, Uint8Array>>() : await readAllXattrs(root);

  const visit = async (path: string, abs: string, parent: Inode | undefined): Promise<void> => {
    let st;
    try {
      st = await lstat(abs, { bigint: true });
    } catch (error) {
      throw ioError(`cannot read ${abs}`, error);
    }
    const type = fileType(Number(st.mode));
    if (type !== 'directory') {
      const known = byDevIno.get(`${st.dev}:${st.ino}`);
      if (known) {
        known.nlink++;
        entries.push({ path, ino: known.ino });
        return;
      }
    }
    const mtimeSec = st.mtimeNs >= 0n ? st.mtimeNs / 1_000_000_000n : -((-st.mtimeNs + 999_999_999n) / 1_000_000_000n);
    const { major, minor } = type === 'char' || type === 'block' ? splitRdev(st.rdev) : { major: 0, minor: 0 };
    const inode: Inode = {
      ino: inodes.length + 1,
      type,
      mode: type === 'symlink' ? 0o777 : Number(st.mode) & 0o7777,
      uid: Number(st.uid),
      gid: Number(st.gid),
      size: type === 'file' ? Number(st.size) : 0,
      mtimeSec: Number(mtimeSec),
      mtimeNsec: Number(st.mtimeNs - mtimeSec * 1_000_000_000n),
      rdevMajor: major,
      rdevMinor: minor,
      nlink: type === 'directory' ? 2 : 1,
    };
    if (type === 'symlink') {
      const target = await readlink(abs, { encoding: 'buffer' });
      inode.linkTarget = utf8Name(root, path, target, 'link target');
      inode.size = target.length;
    }
    const attrs = xattrs.get(abs);
    if (attrs && Object.keys(attrs).length > 0) inode.xattrs = attrs;
    inodes.push(inode);
    entries.push({ path, ino: inode.ino });
    if (type === 'file') absolute.set(inode.ino, abs);
    if (type !== 'directory') {
      byDevIno.set(`${st.dev}:${st.ino}`, inode);
      return;
    }
    if (parent) parent.nlink++;
    let raw: Buffer[];
    try {
      raw = await readdir(abs, { encoding: 'buffer' });
    } catch (error) {
      throw ioError(`cannot list ${abs}`, error);
    }
    raw.sort(Buffer.compare);
    const names = raw.map((name) => utf8Name(root, path, name));
    for (const name of names) await visit(path === '/' ? `/${name}` : `${path}/${name}`, join(abs, name), inode);
  };
  await visit('/', root, undefined);
  const rootInode = inodes[0]!;
  if (rootInode.type !== 'directory') throw new UsageError(`${root} is not a directory`);

  return {
    tables: { inodes, entries },
    async writeContents(sink) {
      for (const inode of inodes) {
        if (inode.type !== 'file' || inode.size === 0) continue;
        const abs = absolute.get(inode.ino)!;
        const stream = createReadStream(abs, { highWaterMark: 1024 * 1024 });
        try {
          await sink.file(inode.ino, stream, abs);
        } catch (error) {
          if (error instanceof ClipError) throw error;
          throw ioError(`cannot read ${abs}`, error);
        } finally {
          stream.destroy();
        }
      }
    },
  };
}
