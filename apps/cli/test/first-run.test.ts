// First run without a profile, through a real registry behind the testkit's proxy (whose
// request log gives the order requests reached the "registry"), on the Debian + python3 test
// image: demand reads overtake a long queue of background prefetch; touching ranges are
// coalesced into one request; ELF dependencies of real binaries are read through the reader
// and match readelf; the entrypoint's program, interpreter and libraries are prefetched.
// Every byte read is compared with the same file read from the local layout's blobs.
import { execFile } from 'node:child_process';
import { open, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ClipArchive, type Inode, readArchiveFile } from '@clip/archive-format';
import { createArchive } from '@clip/indexer';
import { entrypointProgram, prefetchEntrypoint, readElfDependencies } from '@clip/mounter';
import { LayerReader, type LayerReaderOptions, MemorySpanCache, resolveImagePath } from '@clip/read-engine';
import { openImageSource } from '@clip/registry-fetch';
import { type Digest, silentLogger } from '@clip/shared';
import { startMount } from './mount-harness.js';
import {
  buildDebianImage,
  type DebianImage,
  type FaultProxy,
  type RunningRegistry,
  skopeoCopy,
  startFaultProxy,
  startRegistry,
} from '@clip/testkit';

const exec = promisify(execFile);

let work: string;
let registry: RunningRegistry | undefined;
let proxy: FaultProxy | undefined;
let image: DebianImage;
let archive: ClipArchive;
let storageRef: string;
let source: Awaited<ReturnType<typeof openImageSource>> | undefined;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'clip-first-run-'));
  image = await buildDebianImage();
  registry = await startRegistry();
  proxy = await startFaultProxy({ upstream: { hostname: '127.0.0.1', port: registry.port } });
  await skopeoCopy(image.ref, `docker://${registry.host}/debian/python3:${image.tag}`);
  storageRef = `${proxy.host}/debian/python3:${image.tag}`;
  const output = join(work, 'image.clip');
  // Small spans: a directory of modules covers many spans, so a prefetch of it queues many requests.
  await createArchive({ source: image.ref, storageRef, output, spanSize: 256 * 1024 });
  archive = await readArchiveFile(output);
  source = await openImageSource(`${storageRef}@${archive.metadata.storage!.manifestDigest}`);
}, 900_000);

afterAll(async () => {
  await source?.close();
  await proxy?.stop();
  await registry?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

function registryReader(options: Partial<LayerReaderOptions> = {}): LayerReader {
  return new LayerReader(archive, {
    fetchRange: (digest: Digest, start: number, end: number) => source!.readBlobRange(digest, start, end),
    ...options,
  });
}

/** The same bytes from the layout's blob files: the reference every read is compared with. */
function localReader(): LayerReader {
  return new LayerReader(archive, {
    fetchRange: async (digest: Digest, start: number, end: number) => {
      const file = await open(join(image.layoutDir, 'blobs', 'sha256', digest.slice(7)));
      try {
        const buffer = Buffer.alloc(end - start);
        const { bytesRead } = await file.read(buffer, 0, end - start, start);
        return buffer.subarray(0, bytesRead);
      } finally {
        await file.close();
      }
    },
    scheduler: false,
  });
}

function inodeAt(path: string): Inode {
  return resolveImagePath(archive, path).inode;
}

/** Regular files under a directory of the image, recursively. */
function filesUnder(dir: string): Inode[] {
  const found: Inode[] = [];
  const walk = (ino: number) => {
    for (const child of archive.childNames(ino) ?? []) {
      const inode = archive.inode(child.ino);
      if (inode.type === 'directory') walk(child.ino);
      else if (inode.type === 'file' && inode.data && inode.size > 0) found.push(inode);
    }
  };
  walk(inodeAt(dir).ino);
  return found;
}

function rangeRequests(): Array<{ url: string; range: string }> {
  return proxy!.log.filter((entry) => entry.range !== undefined).map((entry) => ({ url: entry.url, range: entry.range! }));
}

describe('fetch scheduling through a real registry', () => {
  /** A long background prefetch of the python stdlib, then a demand read of a file of the other layer. */
  const race = async (priorities: boolean) => {
    const modules = filesUnder('/usr/lib/python3.11');
    const demandInode = inodeAt('/etc/debian_version');
    const prefetchLayer = modules[0]!.data!.layer;
    expect(modules.every((inode) => inode.data!.layer === prefetchLayer)).toBe(true);
    expect(demandInode.data!.layer).not.toBe(prefetchLayer);
    const reader = registryReader({ scheduler: { priorities } });
    proxy!.log.length = 0;
    let prefetchDone = false;
    const prefetch = reader
      .prefetchRanges(
        modules.map((inode) => ({ layer: inode.data!.layer, offset: inode.data!.offset, length: inode.size })),
        { concurrency: 32 },
      )
      .finally(() => {
        prefetchDone = true;
      });
    const data = await reader.readFile(demandInode, 0, demandInode.size);
    const doneAtDemand = prefetchDone;
    const result = await prefetch;
    const requests = rangeRequests();
    const demandDigest = archive.layers[demandInode.data!.layer]!.digest;
    const demandIndex = requests.findIndex((request) => request.url.endsWith(demandDigest));
    expect(Buffer.compare(data, await localReader().readFile(demandInode, 0, demandInode.size))).toBe(0);
    return { demandIndex, requests: requests.length, doneAtDemand, result, stats: reader.schedulerStats };
  };

  it('a demand read goes before queued background prefetches; the prefetch still completes', async () => {
    const first = await race(true);
    console.log('with priorities', JSON.stringify(first));
    expect(first.result.failed).toBe(0);
    expect(first.result.spans).toBeGreaterThan(40);
    expect(first.requests).toBeGreaterThan(40);
    // 6 background requests in flight (8 slots, 2 kept for reads), then the demand read's.
    expect(first.demandIndex).toBeGreaterThanOrEqual(0);
    expect(first.demandIndex).toBeLessThanOrEqual(6);
    expect(first.doneAtDemand).toBe(false);
    expect(first.stats.demandRequests).toBe(1);

    // The same race in arrival order: the read waits behind the queued prefetch.
    const control = await race(false);
    console.log('arrival order', JSON.stringify(control));
    expect(control.demandIndex).toBeGreaterThan(24);
  }, 120_000);

  it('a background read that a demand read joins is promoted', async () => {
    const modules = filesUnder('/usr/lib/python3.11');
    const reader = registryReader();
    proxy!.log.length = 0;
    const prefetch = reader.prefetchRanges(
      modules.map((inode) => ({ layer: inode.data!.layer, offset: inode.data!.offset, length: inode.size })),
      { concurrency: 32 },
    );
    // The 20th span the prefetch starts is queued behind 6 in flight: a read of it promotes it.
    const spans: number[] = [];
    const last = modules.find((inode) => {
      const span = reader.spanAt(inode.data!.layer, inode.data!.offset)!.index;
      if (!spans.includes(span)) spans.push(span);
      return spans.length === 20;
    })!;
    const data = await reader.readFile(last, 0, last.size);
    await prefetch;
    expect(reader.schedulerStats.promoted).toBeGreaterThan(0);
    expect(Buffer.compare(data, await localReader().readFile(last, 0, last.size))).toBe(0);
  }, 120_000);

  it('close() stops background work: queued requests are dropped and none is sent later', async () => {
    const modules = filesUnder('/usr/lib/python3.11');
    const reader = registryReader();
    proxy!.log.length = 0;
    const stop = new AbortController();
    const prefetch = reader.prefetchRanges(
      modules.map((inode) => ({ layer: inode.data!.layer, offset: inode.data!.offset, length: inode.size })),
      { concurrency: 32, signal: stop.signal },
    );
    while (rangeRequests().length === 0) await new Promise((resolve) => setTimeout(resolve, 1));
    stop.abort();
    reader.close();
    const result = await prefetch;
    const sent = rangeRequests().length;
    expect(result.failed).toBeGreaterThan(0);
    // The 6 background requests in flight (and any started before close) of 100 spans.
    expect(sent).toBeLessThan(20);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(rangeRequests().length).toBe(sent);
    await expect(reader.readFile(modules[0]!, 0, 1)).rejects.toThrow(/closed/);
  }, 120_000);

  it('coalesces touching ranges of one layer into one request, bytes verified', async () => {
    const modules = filesUnder('/usr/lib/python3.11/json').concat(filesUnder('/usr/lib/python3.11/email'));
    const ranges = modules.map((inode) => ({ layer: inode.data!.layer, offset: inode.data!.offset, length: inode.size }));
    const plain = registryReader({ scheduler: { slots: 1, backgroundSlots: 1 } });
    proxy!.log.length = 0;
    await plain.prefetchRanges(ranges, { concurrency: 16 });
    const separate = rangeRequests().length;
    const merged = registryReader({ scheduler: { slots: 1, backgroundSlots: 1, coalesce: true }, cache: new MemorySpanCache(64 << 20) });
    proxy!.log.length = 0;
    const result = await merged.prefetchRanges(ranges, { concurrency: 16 });
    const together = rangeRequests().length;
    console.log('coalescing', JSON.stringify({ separate, together, stats: merged.schedulerStats }));
    expect(result.failed).toBe(0);
    expect(merged.schedulerStats.coalesced).toBeGreaterThan(0);
    expect(together).toBeLessThan(separate);
    // Served from what the merged requests fetched (verified pieces), equal to the local bytes.
    proxy!.log.length = 0;
    const local = localReader();
    for (const inode of modules) {
      expect(Buffer.compare(await merged.readFile(inode, 0, inode.size), await local.readFile(inode, 0, inode.size))).toBe(0);
    }
    expect(rangeRequests().length).toBe(0);
  }, 120_000);
});

describe('first run: the entrypoint and the files it loads', () => {
  it('reads ELF dependencies of real binaries through the registry, as readelf does', async () => {
    const reader = registryReader();
    const local = localReader();
    for (const path of ['/usr/bin/python3', '/bin/sh', '/usr/lib/x86_64-linux-gnu/libc.so.6']) {
      const inode = inodeAt(path);
      const elf = await readElfDependencies((offset, length) => reader.readFile(inode, offset, length, undefined, 'background'));
      const file = join(work, 'elf-under-test');
      await writeFile(file, await local.readFile(inode, 0, inode.size));
      const { stdout } = await exec('readelf', ['-d', '-l', '-W', file]);
      const needed = [...stdout.matchAll(/\(NEEDED\)\s+Shared library: \[([^\]]+)\]/g)].map((match) => match[1]);
      const interpreter = /Requesting program interpreter: ([^\]]+)\]/.exec(stdout)?.[1];
      expect(elf, path).toBeDefined();
      expect(elf!.needed, path).toEqual(needed);
      expect(elf!.interpreter, path).toBe(interpreter);
      expect(elf!.machine).toBe(62);
      expect(needed.length, path).toBeGreaterThan(0);
    }
  }, 120_000);

  /** The archive as published, with another command in its config. */
  const withCommand = (cmd: string[]) => {
    const view = Object.create(archive) as ClipArchive;
    Object.defineProperty(view, 'metadata', {
      value: { ...archive.metadata, imageConfig: { ...archive.metadata.imageConfig, cmd, entrypoint: undefined } },
    });
    return view;
  };

  it('prefetches the program, its ELF interpreter and its libraries; the workload then finds them fetched', async () => {
    const view = withCommand(['python3', '-c', 'print(1)']);
    expect(entrypointProgram(view)).toBe('/usr/bin/python3');
    const reader = new LayerReader(view, {
      fetchRange: (digest: Digest, start: number, end: number) => source!.readBlobRange(digest, start, end),
      cache: new MemorySpanCache(256 << 20),
    });
    proxy!.log.length = 0;
    const result = await prefetchEntrypoint({ archive: view, reader, logger: silentLogger });
    console.log('entrypoint prefetch', JSON.stringify(result));
    expect(result.failed).toBe(0);
    expect(result.paths[0]).toBe('/usr/bin/python3.11');
    for (const path of [
      '/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2',
      '/usr/lib/x86_64-linux-gnu/libc.so.6',
      '/usr/lib/x86_64-linux-gnu/libm.so.6',
      '/usr/lib/x86_64-linux-gnu/libz.so.1.2.13',
      '/usr/lib/x86_64-linux-gnu/libexpat.so.1.8.10',
    ]) {
      expect(result.paths).toContain(path);
    }
    expect(rangeRequests().length).toBeGreaterThan(0);
    // Everything it found is local now, and byte-for-byte the image's.
    proxy!.log.length = 0;
    const local = localReader();
    for (const path of result.paths) {
      const inode = inodeAt(path);
      expect(Buffer.compare(await reader.readFile(inode, 0, inode.size), await local.readFile(inode, 0, inode.size)), path).toBe(0);
    }
    expect(rangeRequests().length).toBe(0);
  }, 120_000);

  it('follows a #! script to its interpreter', async () => {
    const view = withCommand(['pydoc3']);
    const reader = registryReader();
    const result = await prefetchEntrypoint({ archive: view, reader, logger: silentLogger });
    expect(result.paths.slice(0, 2)).toEqual(['/usr/bin/pydoc3.11', '/usr/bin/python3.11']);
    expect(result.paths).toContain('/usr/lib/x86_64-linux-gnu/libc.so.6');
  }, 120_000);

  it('clip mount fetches the files of the image command at mount (not with -entrypoint; dlopened libraries with +libraries), python3 runs', async () => {
    const archivePath = join(work, 'image.clip');
    for (const setting of ['default', '-entrypoint', '+libraries']) {
      const mountpoint = await mkdtemp(join(tmpdir(), 'clip-first-run-mnt-'));
      const mount = await startMount(archivePath, mountpoint, ['--no-standby'], { env: { CLIP_FIRST_RUN: setting } });
      try {
        if (setting === 'default') {
          // The test image's command is python3: the interpreter, ld.so and its libraries.
          while (!/msg="entrypoint files fetched"/.test(mount.stderr())) await new Promise((resolve) => setTimeout(resolve, 20));
          const line = mount
            .stderr()
            .split('\n')
            .find((text) => text.includes('entrypoint files fetched'))!;
          const paths = /paths="([^"]*)"/.exec(line)?.[1]?.split(',') ?? [];
          expect(paths[0]).toBe('/usr/bin/python3.11');
          expect(paths).toContain('/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2');
          expect(paths).toContain('/usr/lib/x86_64-linux-gnu/libc.so.6');
          expect(line).toMatch(/failed=0/);
        }
        const { stdout } = await exec('chroot', [mountpoint, '/usr/bin/python3', '-c', 'import json, sqlite3; print(json.dumps([1]))']);
        expect(stdout).toBe('[1]\n');
      } finally {
        await mount.stop();
        await rm(mountpoint, { recursive: true, force: true });
      }
      const log = mount.stderr();
      expect(log).toMatch(/msg="fetch scheduling"/);
      if (setting === '-entrypoint') expect(log).not.toMatch(/entrypoint files fetched/);
      // dlopen of _sqlite3's extension module: its first read starts a walk (libsqlite3 and more).
      if (setting === '+libraries') expect(log).toMatch(/library_walks=[1-9]/);
      else expect(log).not.toMatch(/library_walks/);
    }
  }, 120_000);

  it('an image without a command, or a command not in the image, prefetches nothing', async () => {
    const reader = registryReader();
    proxy!.log.length = 0;
    for (const cmd of [[], ['no-such-program']]) {
      const result = await prefetchEntrypoint({ archive: withCommand(cmd), reader, logger: silentLogger });
      expect(result.paths).toEqual([]);
    }
    expect(rangeRequests().length).toBe(0);
  });
});
