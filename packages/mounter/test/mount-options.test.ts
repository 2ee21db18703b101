// Which FUSE mount options clip asks for: everything for root; without root, allow_other only
// when /etc/fuse.conf lets users ask for it (fusermount3 refuses it otherwise).
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { mountOptions, userAllowOther } from '../src/mount.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'clip-fuse-conf-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

it('reads user_allow_other from fuse.conf the way fusermount3 does', async () => {
  const conf = join(dir, 'fuse.conf');
  await writeFile(conf, '# user_allow_other - explained here\n#user_allow_other\nmount_max = 1000\n');
  expect(userAllowOther(conf)).toBe(false);
  await writeFile(conf, '#user_allow_other\n  user_allow_other  \n');
  expect(userAllowOther(conf)).toBe(true);
  expect(userAllowOther(join(dir, 'missing.conf'))).toBe(false);
});

it.skipIf(process.getuid?.() !== 0)('as root: read-only, open to every user, setuid bits and devices kept', () => {
  expect(mountOptions()).toEqual(['ro', 'fsname=clip', 'subtype=clip', 'default_permissions', 'allow_other', 'suid', 'dev']);
});
