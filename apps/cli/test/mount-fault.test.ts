// A real `clip mount` fetching through a fault-injecting proxy in front of a real registry:
// thousands of random reads from a child process, every byte compared with umoci's unpacked
// copy. Faults may turn reads into EIO; they must never turn them into wrong bytes, and no
// read may outlast the read timeout by more than a fixed slack. Then the "registry" goes
// down entirely and comes back: the mount process survives and serves again.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FaultProxy, type FaultRates, type RunningRegistry, startFaultProxy, startRegistry } from '@clip/testkit';
import { removeAll, startMount, tempDir, type RunningMount } from './mount-harness.js';
import { indexWithCli, prepareReliabilityImage, runRandomReads, type ReliabilityImage } from './reliability-harness.js';

const READ_TIMEOUT_S = 4;
/** FUSE queuing and scheduling on a busy 2-core machine, on top of the read timeout. */
const LATENCY_SLACK_MS = 3000;
/**
 * One read() system call: usually answered or failed within one read timeout; when the kernel
 * issues a second FUSE read for the same call after the first failed (readahead then a
 * synchronous page read of a range not yet known to be failing), within two.
 */
const SYSCALL_BOUND_MS = 2 * READ_TIMEOUT_S * 1000 + LATENCY_SLACK_MS;
/**
 * One random read = open, read() until the asked length (a read() may return short data
 * up to a failing page, and the next read() then waits for that page), close.
 */
const READ_BOUND_MS = 2 * READ_TIMEOUT_S * 1000 + LATENCY_SLACK_MS;

/** About 25% of range requests get a fault. */
const RATES: FaultRates = {
  reset: 0.02,
  'reset-mid-body': 0.02,
  stall: 0.01,
  'stall-mid-body': 0.01,
  'status-500': 0.02,
  'status-503': 0.02,
  'status-429': 0.02,
  truncate: 0.03,
  flip: 0.03,
  'wrong-content-range': 0.02,
  'shifted-body': 0.02,
  'ignore-range': 0.02,
};

let work: string;
let registry: RunningRegistry | undefined;
let proxy: FaultProxy | undefined;
let image: ReliabilityImage;
let archive: string;
let mount: RunningMount | undefined;

beforeAll(async () => {
  work = await tempDir('fault');
  registry = await startRegistry();
  image = await prepareReliabilityImage(work, registry.host);
  proxy = await startFaultProxy({ upstream: { hostname: '127.0.0.1', port: registry.port }, seed: 8 });
  archive = join(work, 'image.clip');
  await indexWithCli(image.layoutRef, archive, `${proxy.host}/reliability/image:reliability`);
  const mountpoint = await tempDir('fault-mnt');
  // A tiny memory cache and no disk cache: nearly every read that misses the page cache goes to the proxy.
  mount = await startMount(archive, mountpoint, ['--memory-cache', '256KiB', '--read-timeout', String(READ_TIMEOUT_S)]);
}, 240_000);

afterAll(async () => {
  if (mount && !mount.alive()) console.log('mount died:', mount.stderr().slice(-4000));
  const metrics = await mount?.stop();
  if (metrics) console.log('mount metrics', JSON.stringify(metrics));
  if (mount) await removeAll(mount.mountpoint);
  await proxy?.stop();
  await registry?.stop();
  await removeAll(work);
});

describe('clip mount through a faulty registry', () => {
  it('random reads are correct or EIO, never wrong, each within the time bound', async () => {
    proxy!.setRates(RATES);
    const report = await runRandomReads(work, {
      mountpoint: mount!.mountpoint,
      rootfs: image.rootfs,
      files: image.files,
      reads: 3000,
      durationMs: 75_000,
      concurrency: 8,
      maxLength: 96 * 1024,
      seed: 1,
    });
    proxy!.setRates({});
    const stats = proxy!.stats();
    console.log('fault run', JSON.stringify({ report, proxy: stats }));
    expect(report.wrong, report.wrongSamples.join('\n')).toBe(0);
    expect(report.otherErrors).toEqual({});
    expect(report.correct + report.eio).toBe(report.attempted);
    expect(report.attempted).toBeGreaterThan(500);
    expect(report.worstSyscallMs).toBeLessThan(SYSCALL_BOUND_MS);
    expect(report.worstMs).toBeLessThan(READ_BOUND_MS);
    // The faults really happened, of every kind, and most reads still succeeded.
    for (const [kind, count] of Object.entries(stats.faults)) expect(count, kind).toBeGreaterThan(0);
    expect(report.correct).toBeGreaterThan(report.attempted * 0.8);
    expect(mount!.alive()).toBe(true);
  }, 180_000);

  it('survives the registry going down and serves again when it is back', async () => {
    proxy!.setRates({ reset: 0.5, stall: 0.5 });
    const down = await runRandomReads(work, {
      mountpoint: mount!.mountpoint,
      rootfs: image.rootfs,
      files: image.files,
      reads: 200,
      durationMs: 20_000,
      concurrency: 8,
      maxLength: 64 * 1024,
      seed: 2,
    });
    console.log('registry down', JSON.stringify(down));
    expect(down.wrong).toBe(0);
    expect(down.otherErrors).toEqual({});
    expect(down.worstSyscallMs).toBeLessThan(SYSCALL_BOUND_MS);
    expect(down.worstMs).toBeLessThan(READ_BOUND_MS);
    expect(mount!.alive()).toBe(true);

    proxy!.setRates({});
    const up = await runRandomReads(work, {
      mountpoint: mount!.mountpoint,
      rootfs: image.rootfs,
      files: image.files,
      reads: 400,
      durationMs: 30_000,
      concurrency: 8,
      maxLength: 64 * 1024,
      seed: 3,
    });
    console.log('registry back', JSON.stringify(up));
    expect(up.wrong).toBe(0);
    expect(up.eio).toBe(0);
    expect(up.correct).toBe(up.attempted);
    expect(mount!.alive()).toBe(true);
  }, 120_000);
});
