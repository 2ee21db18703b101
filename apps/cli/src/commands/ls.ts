// `clip ls <file.clip> [path] [-l]`: list a directory of an archive, like ls(1).
import type { Command } from 'commander';
import type { ClipArchive, FileType, Inode } from '@clip/archive-format';
import { escapeName, PathNotFoundError } from '@clip/shared';
import { openArchiveTables } from '../archive-argument.js';
import { addTrustOptions, type TrustFlags } from '../archive-trust/cli-options.js';
import { HOSTS_DIR_HELP } from '../hosts-option.js';

const TYPE_CHARS: Record<FileType, string> = {
  file: '-',
  directory: 'd',
  symlink: 'l',
  char: 'c',
  block: 'b',
  fifo: 'p',
  socket: 's',
};

/** `drwxr-xr-x`-style mode string, with s/S (setuid/setgid) and t/T (sticky). */
export function modeString(type: FileType, mode: number): string {
  const triple = (bits: number, special: boolean, set: string, unset: string): string =>
    (bits & 4 ? 'r' : '-') + (bits & 2 ? 'w' : '-') + (special ? (bits & 1 ? set : unset) : bits & 1 ? 'x' : '-');
  return (
    TYPE_CHARS[type] +
    triple((mode >> 6) & 7, (mode & 0o4000) !== 0, 's', 'S') +
    triple((mode >> 3) & 7, (mode & 0o2000) !== 0, 's', 'S') +
    triple(mode & 7, (mode & 0o1000) !== 0, 't', 'T')
  );
}

function pad2(value: number): string {
  return String(value).padStart(2, '0');
}

/** UTC, minute precision: stable across machines, unlike ls's locale-dependent dates. */
export function formatMtime(seconds: number): string {
  const date = new Date(seconds * 1000);
  if (Number.isNaN(date.getTime())) return '????-??-?? ??:??';
  return `${date.getUTCFullYear()}-${pad2(date.getUTCMonth() + 1)}-${pad2(date.getUTCDate())} ${pad2(date.getUTCHours())}:${pad2(date.getUTCMinutes())}`;
}

function sizeColumn(inode: Inode): string {
  return inode.type === 'char' || inode.type === 'block' ? `${inode.rdevMajor}, ${inode.rdevMinor}` : String(inode.size);
}

export function longListing(rows: Array<{ name: string; inode: Inode }>): string[] {
  const cells = rows.map(({ name, inode }) => [
    modeString(inode.type, inode.mode),
    String(inode.nlink),
    String(inode.uid),
    String(inode.gid),
    sizeColumn(inode),
    formatMtime(inode.mtimeSec),
    inode.type === 'symlink' ? `${escapeName(name)} -> ${escapeName(inode.linkTarget ?? '')}` : escapeName(name),
  ]);
  const widths = [1, 2, 3, 4].map((column) => Math.max(0, ...cells.map((row) => row[column]!.length)));
  return cells.map((row) =>
    [
      row[0],
      row[1]!.padStart(widths[0]!),
      row[2]!.padEnd(widths[1]!),
      row[3]!.padEnd(widths[2]!),
      row[4]!.padStart(widths[3]!),
      row[5],
      row[6],
    ].join(' '),
  );
}

function normalise(path: string): string {
  const parts = path.split('/').filter((part) => part !== '' && part !== '.');
  return `/${parts.join('/')}`;
}

export function listPath(archive: ClipArchive, path: string): Array<{ name: string; inode: Inode }> {
  const absolute = normalise(path);
  const inode = archive.lookup(absolute);
  if (!inode) throw new PathNotFoundError(absolute);
  if (inode.type !== 'directory') return [{ name: absolute, inode }];
  return archive.readdir(absolute) ?? [];
}

export function register(program: Command): void {
  const command = program
    .command('ls')
    .description('list a directory (or show one file) of a .clip archive')
    .argument('<archive>', 'the .clip file (or an http(s) URL), or a registry reference (its archive is loaded as by mount)')
    .argument('[path]', 'path inside the image', '/')
    .option('-l, --long', 'long listing: mode, links, uid, gid, size (or major, minor), mtime (UTC), name -> target')
    .option('--insecure', 'allow plain HTTP / unverified TLS to a non-loopback registry')
    .option('--hosts-dir <dir>', HOSTS_DIR_HELP);
  addTrustOptions(command).action(
    async (file: string, path: string, options: { long?: boolean; insecure?: boolean; hostsDir?: string } & TrustFlags) => {
      const { archive } = await openArchiveTables(file, options);
      const rows = listPath(archive, path);
      const lines = options.long ? longListing(rows) : rows.map((row) => escapeName(row.name));
      if (lines.length > 0) process.stdout.write(`${lines.join('\n')}\n`);
    },
  );
}
