// Test helpers: an archive over an uncompressed hand-made layer, a mount in a child process,
// commands run in child processes against the mount.
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { type ArchiveContents, type DirEntry, encodeArchive, type Inode } from '@clip/archive-format';
import type { Digest } from '@clip/shared';
import { childExit, plainLayer } from '@clip/testkit';

export const run = promisify(execFile);

const sha = (data: Uint8Array): Digest => `sha256:${createHash('sha256').update(data).digest('hex')}`;

export interface FileSpec {
  path: string;
  type: Inode['type'];
  mode: number;
  content?: Buffer;
  linkTarget?: string;
  /** Path of an earlier file this one is a hardlink of. */
  hardlinkOf?: string;
  rdev?: [number, number];
  xattrs?: Record<string, Buffer>;
  uid?: number;
  gid?: number;
  mtimeSec?: number;
}

/** Writes archive.clip and the layer blob into `dir`; returns the layer bytes by path. */
export async function writeTestArchive(
  dir: string,
  files: FileSpec[],
  spanSize = 64 * 1024,
): Promise<{ archivePath: string; layersDir: string }> {
  const chunks: Buffer[] = [];
  let layerSize = 0;
  const inodes: Inode[] = [
    {
      ino: 1,
      type: 'directory',
      mode: 0o755,
      uid: 0,
      gid: 0,
      size: 0,
      mtimeSec: 1_700_000_000,
      mtimeNsec: 0,
      rdevMajor: 0,
      rdevMinor: 0,
      nlink: 2,
    },
  ];
  const entries: DirEntry[] = [{ path: '/', ino: 1 }];
  const inoByPath = new Map<string, number>([['/', 1]]);
  for (const file of files) {
    const linked = file.hardlinkOf ? inoByPath.get(file.hardlinkOf) : undefined;
    if (linked !== undefined) {
      inodes[linked - 1]!.nlink++;
      entries.push({ path: file.path, ino: linked });
      inoByPath.set(file.path, linked);
      continue;
    }
    const ino = inodes.length + 1;
    const inode: Inode = {
      ino,
      type: file.type,
      mode: file.mode,
      uid: file.uid ?? 0,
      gid: file.gid ?? 0,
      size: file.content?.length ?? (file.linkTarget ? Buffer.byteLength(file.linkTarget) : 0),
      mtimeSec: file.mtimeSec ?? 1_700_000_000,
      mtimeNsec: 0,
      rdevMajor: file.rdev?.[0] ?? 0,
      rdevMinor: file.rdev?.[1] ?? 0,
      nlink: file.type === 'directory' ? 2 : 1,
    };
    if (file.linkTarget) inode.linkTarget = file.linkTarget;
    if (file.xattrs) inode.xattrs = Object.fromEntries(Object.entries(file.xattrs).map(([k, v]) => [k, new Uint8Array(v)]));
    if (file.type === 'file' && file.content && file.content.length > 0) {
      inode.data = { layer: 0, offset: layerSize };
      chunks.push(file.content);
      layerSize += file.content.length;
    }
    inodes.push(inode);
    entries.push({ path: file.path, ino });
    inoByPath.set(file.path, ino);
    if (file.type === 'directory') {
      const parent = file.path.slice(0, file.path.lastIndexOf('/')) || '/';
      inodes[inoByPath.get(parent)! - 1]!.nlink++;
    }
  }
  const layerData = Buffer.concat(chunks);
  const layer = plainLayer(layerData, spanSize, 16 * 1024);
  const contents: ArchiveContents = {
    metadata: {
      sourceRef: 'test',
      storage: { registry: '127.0.0.1:1', repository: 'test/image', manifestDigest: sha(Buffer.from('m')) },
      imageConfig: {},
      createdBy: 'mounter test',
    },
    layers: [layer],
    inodes,
    entries,
  };
  const archivePath = join(dir, 'image.clip');
  await writeFile(archivePath, encodeArchive(contents));
  await writeFile(join(dir, layer.digest.slice('sha256:'.length)), layerData);
  return { archivePath, layersDir: dir };
}

export interface ChildMount {
  child: ChildProcess;
  output(): string;
  /** Unmounts (SIGTERM) and returns the metrics the child printed. */
  stop(): Promise<Record<string, unknown> | undefined>;
}

/** Starts mount-child.mjs and waits for `mounted`. */
export async function startChildMount(args: string[]): Promise<ChildMount> {
  const script = new URL('./mount-child.mjs', import.meta.url).pathname;
  const child = spawn(process.execPath, [script, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (chunk: Buffer) => (out += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (out += chunk.toString()));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`mount did not come up:\n${out}`)), 60_000);
    const check = () => {
      if (out.includes('mounted\n')) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout!.on('data', check);
    child.once('exit', () => {
      clearTimeout(timer);
      reject(new Error(`mount child exited:\n${out}`));
    });
  });
  return {
    child,
    output: () => out,
    async stop() {
      if (child.exitCode === null) child.kill('SIGTERM');
      await childExit(child, { killAfterMs: 10_000 });
      const last = out.trim().split('\n').at(-1) ?? '';
      try {
        return JSON.parse(last) as Record<string, unknown>;
      } catch {
        return undefined;
      }
    },
  };
}
