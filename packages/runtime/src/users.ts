// Resolves the image config's `User` (name, uid, name:group, uid:gid, ...) to numeric ids and
// supplementary groups from the image's own /etc/passwd and /etc/group, as Docker does.
// Files are read inside the image root without following symlinks out of it.
import { lstat, readFile, readlink } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { ContainerConfigError } from './errors.js';

export interface ResolvedUser {
  uid: number;
  gid: number;
  /** Supplementary groups: the groups of /etc/group that list the user by name. */
  additionalGids: number[];
  /** Home directory from /etc/passwd ("/" when unknown), for a default HOME. */
  home: string;
}

interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
  home: string;
}

interface GroupEntry {
  name: string;
  gid: number;
  members: string[];
}

const MAX_SYMLINKS = 40;

/** Path on the host of `path` inside `root`, with every symlink resolved inside `root` (chroot semantics). */
export async function resolveInRoot(root: string, path: string): Promise<string> {
  let pending = posix.normalize(`/${path}`).split('/').filter(Boolean);
  const done: string[] = [];
  let links = 0;
  while (pending.length > 0) {
    const part = pending.shift()!;
    if (part === '..') {
      done.pop();
      continue;
    }
    const host = join(root, ...done, part);
    const info = await lstat(host).catch(() => undefined);
    if (!info?.isSymbolicLink()) {
      done.push(part);
      continue;
    }
    if (++links > MAX_SYMLINKS) throw new ContainerConfigError(`too many symbolic links resolving ${path} in the image`);
    const target = await readlink(host);
    const rest = target.split('/').filter(Boolean);
    if (target.startsWith('/')) done.length = 0;
    pending = [...rest, ...pending];
  }
  return join(root, ...done);
}

async function readImageFile(root: string, path: string): Promise<string | undefined> {
  try {
    return await readFile(await resolveInRoot(root, path), 'utf8');
  } catch (error) {
    if (error instanceof ContainerConfigError) throw error;
    return undefined;
  }
}

const isNumeric = (text: string) => /^\d+$/.test(text);

function toId(text: string, what: string): number {
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value > 0xffffffff) throw new ContainerConfigError(`invalid ${what} ${JSON.stringify(text)}`);
  return value;
}

export function parsePasswd(text: string): PasswdEntry[] {
  const entries: PasswdEntry[] = [];
  for (const line of text.split('\n')) {
    const fields = line.split(':');
    if (line.startsWith('#') || fields.length < 7 || !isNumeric(fields[2]!) || !isNumeric(fields[3]!)) continue;
    entries.push({ name: fields[0]!, uid: Number(fields[2]), gid: Number(fields[3]), home: fields[5] || '/' });
  }
  return entries;
}

export function parseGroup(text: string): GroupEntry[] {
  const entries: GroupEntry[] = [];
  for (const line of text.split('\n')) {
    const fields = line.split(':');
    if (line.startsWith('#') || fields.length < 4 || !isNumeric(fields[2]!)) continue;
    entries.push({ name: fields[0]!, gid: Number(fields[2]), members: fields[3]!.split(',').filter(Boolean) });
  }
  return entries;
}

/**
 * Resolves `user` (empty = root) inside the image root `root`. A name that /etc/passwd (or a
 * group that /etc/group) does not know is an error; numeric ids need no entry.
 */
export async function resolveUser(root: string, user: string | undefined, imageName = 'the image'): Promise<ResolvedUser> {
  const spec = (user ?? '').trim() || '0';
  const [userPart = '', groupPart] = spec.split(':', 2) as [string, string | undefined];
  if (userPart === '' || groupPart === '')
    throw new ContainerConfigError(`invalid user ${JSON.stringify(spec)}: expected user[:group] or uid[:gid]`);
  const passwdText = await readImageFile(root, '/etc/passwd');
  const passwd = passwdText === undefined ? [] : parsePasswd(passwdText);

  let entry: PasswdEntry | undefined;
  let uid: number;
  if (isNumeric(userPart)) {
    uid = toId(userPart, 'uid');
    entry = passwd.find((e) => e.uid === uid);
  } else {
    entry = passwd.find((e) => e.name === userPart);
    if (!entry) {
      throw new ContainerConfigError(
        `unable to find user ${userPart}: no matching entry in ${imageName}'s /etc/passwd${passwdText === undefined ? ' (the image has no /etc/passwd)' : ''}`,
      );
    }
    uid = entry.uid;
  }

  const groupText = await readImageFile(root, '/etc/group');
  const groups = groupText === undefined ? [] : parseGroup(groupText);
  let gid = entry?.gid ?? 0;
  if (groupPart !== undefined) {
    if (isNumeric(groupPart)) gid = toId(groupPart, 'gid');
    else {
      const group = groups.find((g) => g.name === groupPart);
      if (!group) throw new ContainerConfigError(`unable to find group ${groupPart}: no matching entry in ${imageName}'s /etc/group`);
      gid = group.gid;
    }
  }
  const additionalGids = entry ? [...new Set(groups.filter((g) => g.members.includes(entry.name) && g.gid !== gid).map((g) => g.gid))] : [];
  return { uid, gid, additionalGids, home: entry?.home ?? '/' };
}
