// The ENTRIES table's order: directory entries sorted by (parent inode, name bytes), so a
// lookup binary-searches each directory's contiguous children. Two algorithms give the same
// order: a one-pass check of the order indexers already produce, and the general sort that
// also reports what is wrong with an invalid entry list.
import { ROOT_INO } from './binary-layout.js';
import { fail } from './format-errors.js';
import type { DirEntry, Inode } from './model.js';
import { compareNames, invalidNameReason } from './name-order.js';

export interface PreparedEntry {
  parent: number;
  ino: number;
  name: string;
}

/** `entries` in table order, parents resolved to inode numbers; throws on an invalid list. */
export function orderEntries(entries: readonly DirEntry[], inodes: readonly Inode[]): PreparedEntry[] {
  return prepareSortedEntries(entries, inodes) ?? prepareEntries(entries, inodes);
}

function splitPath(path: string): { parent: string; name: string } {
  if (!path.startsWith('/') || path.endsWith('/')) fail(`entry path ${JSON.stringify(path)} is not absolute without trailing slash`);
  const cut = path.lastIndexOf('/');
  const parent = cut === 0 ? '/' : path.slice(0, cut);
  const name = path.slice(cut + 1);
  const reason = invalidNameReason(name);
  if (reason) fail(`entry ${JSON.stringify(path)}: ${reason}`);
  return { parent, name };
}

const byParentAndName = (a: PreparedEntry, b: PreparedEntry) => a.parent - b.parent || compareNames(a.name, b.name);

/**
 * The general case: entries in any order, parents resolved through a map of every path, then
 * sorted by (parent, name bytes). Reports what is wrong with invalid entry lists.
 */
function prepareEntries(entries: readonly DirEntry[], inodes: readonly Inode[]): PreparedEntry[] {
  const inoByPath = new Map<string, number>([['/', ROOT_INO]]);
  for (const entry of entries) {
    if (entry.path === '/') {
      if (entry.ino !== ROOT_INO) fail(`root entry names inode ${entry.ino}, expected 1`);
      continue;
    }
    if (inoByPath.has(entry.path)) fail(`duplicate entry ${JSON.stringify(entry.path)}`);
    if (!Number.isInteger(entry.ino) || entry.ino < 1 || entry.ino > inodes.length)
      fail(`entry ${JSON.stringify(entry.path)} names missing inode ${entry.ino}`);
    inoByPath.set(entry.path, entry.ino);
  }
  const prepared: PreparedEntry[] = [];
  for (const entry of entries) {
    if (entry.path === '/') continue;
    const { parent, name } = splitPath(entry.path);
    const parentIno = inoByPath.get(parent);
    if (parentIno === undefined) fail(`entry ${JSON.stringify(entry.path)} has no parent entry ${JSON.stringify(parent)}`);
    if (inodes[parentIno - 1]!.type !== 'directory') fail(`parent of ${JSON.stringify(entry.path)} is not a directory`);
    prepared.push({ parent: parentIno, ino: entry.ino, name });
  }
  // Indexers hand entries over in this order already: check before sorting.
  let sorted = true;
  for (let i = 1; i < prepared.length && sorted; i++) sorted = byParentAndName(prepared[i - 1]!, prepared[i]!) < 0;
  if (!sorted) prepared.sort(byParentAndName);
  return prepared;
}

/**
 * The common case, in one pass: each directory's entries contiguous and in name-byte order,
 * every directory listed before its own entries, as indexers hand them over (the overlay tree
 * lists directories in path order, so a directory's name comes before its children). Only
 * directories' paths are kept, and consecutive entries of one directory look their parent up
 * once; the runs are then put in parent-inode order, which sorts the whole list without
 * comparing names again. Returns undefined at the first entry that does not fit;
 * prepareEntries then redoes the work and reports any error. Strictly increasing names within
 * a directory, and one run per directory, also rule out duplicates.
 */
function prepareSortedEntries(entries: readonly DirEntry[], inodes: readonly Inode[]): PreparedEntry[] | undefined {
  const inodeCount = inodes.length;
  const prepared: PreparedEntry[] = [];
  const directoryIno = new Map<string, number>([['/', ROOT_INO]]);
  /** Runs of one parent's entries: parent inode, first index; in list order. */
  const runParents: number[] = [];
  const runStarts: number[] = [];
  const hadRun = new Uint8Array(inodeCount + 1);
  let lastParent: string | undefined;
  let lastParentIno = 0;
  let previousName = '';
  let inOrder = true;
  for (const entry of entries) {
    const { path, ino } = entry;
    if (path === '/') {
      if (ino !== ROOT_INO) return undefined;
      continue;
    }
    if (!Number.isInteger(ino) || ino < 1 || ino > inodeCount) return undefined;
    const cut = path.lastIndexOf('/');
    if (cut < 0 || cut === path.length - 1 || path.charCodeAt(0) !== 47) return undefined;
    const parent = cut === 0 ? '/' : path.slice(0, cut);
    const name = path.slice(cut + 1);
    if (invalidNameReason(name) !== undefined) return undefined;
    if (parent === lastParent) {
      if (compareNames(previousName, name) >= 0) return undefined;
    } else {
      const found = directoryIno.get(parent);
      if (found === undefined || hadRun[found] === 1) return undefined;
      hadRun[found] = 1;
      if (runParents.length > 0 && found < runParents[runParents.length - 1]!) inOrder = false;
      runParents.push(found);
      runStarts.push(prepared.length);
      lastParent = parent;
      lastParentIno = found;
    }
    previousName = name;
    if (inodes[ino - 1]!.type === 'directory') directoryIno.set(path, ino);
    prepared.push({ parent: lastParentIno, ino, name });
  }
  if (inOrder) return prepared;
  const order = runParents.map((_, run) => run).sort((a, b) => runParents[a]! - runParents[b]!);
  const sorted: PreparedEntry[] = [];
  for (const run of order) {
    const end = run + 1 < runStarts.length ? runStarts[run + 1]! : prepared.length;
    for (let i = runStarts[run]!; i < end; i++) sorted.push(prepared[i]!);
  }
  return sorted;
}
