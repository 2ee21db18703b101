// The two ways worker B can start a container from a published image. Both time from "start"
// to "workload finished" and read the proxy's counters for what crossed the link.
import { join } from 'node:path';
import { mountOverlay } from '../clip/overlay.js';
import type { ProxyStats } from '../net/delay-proxy.js';
import { run } from '../util/exec.js';
import { scratch, type BenchContext, type PublishedImage } from './context.js';

export interface StartMeasurement {
  seconds: number;
  phases: Record<string, number>;
  link: ProxyStats;
  /** Unpacked root filesystem (baseline only; kept for the mount I/O comparison). */
  rootfs?: string;
  metrics?: Record<string, unknown>;
}

/** Full pull + unpack, then the workload in a chroot: what a runtime does today. */
export async function baselineStart(context: BenchContext, image: PublishedImage): Promise<StartMeasurement> {
  const dir = await scratch(context, `baseline-${image.bench.name}`);
  const layout = join(dir, 'layout');
  const bundle = join(dir, 'bundle');
  await context.link.resetCounters();
  const started = performance.now();
  const pull = await run('skopeo', ['copy', '--quiet', '--src-tls-verify=false', `docker://${image.clientRef}`, `oci:${layout}:latest`], {
    netns: context.link.netns,
    timeoutMs: 60 * 60_000,
  });
  const unpack = await run('umoci', ['unpack', '--image', `${layout}:latest`, bundle], { timeoutMs: 60 * 60_000 });
  const workload = await image.bench.workload.run(join(bundle, 'rootfs'));
  const seconds = (performance.now() - started) / 1000;
  const link = await context.link.resetCounters();
  return {
    seconds,
    phases: { pull: pull.seconds, unpack: unpack.seconds, workload: workload.seconds },
    link,
    rootfs: join(bundle, 'rootfs'),
  };
}

export interface ClipStartOptions {
  cacheDir: string;
  /** Archive to mount instead of image.archive (the dense variant). */
  archive?: string;
  prefetch?: string;
  record?: string;
  /** Extra environment of `clip mount` (first-run technique switches). */
  env?: Record<string, string>;
}

/** `clip mount` + overlayfs + chroot workload. */
export async function clipStart(context: BenchContext, image: PublishedImage, options: ClipStartOptions): Promise<StartMeasurement> {
  const archive = options.archive ?? image.archive;
  if (!archive) throw new Error('no archive');
  const dir = await scratch(context, `clip-${image.bench.name}`);
  const mountpoint = join(dir, 'image');
  await run('mkdir', ['-p', mountpoint]);
  await context.link.resetCounters();
  const started = performance.now();
  const mount = await context.clip.mount(archive, mountpoint, { ...options, netns: context.link.netns });
  const mounted = (performance.now() - started) / 1000;
  let overlay;
  let workloadSeconds = 0;
  try {
    overlay = await mountOverlay(mountpoint, join(dir, 'overlay'));
    const workload = await image.bench.workload.run(overlay.merged);
    workloadSeconds = workload.seconds;
  } finally {
    await overlay?.unmount();
  }
  const seconds = (performance.now() - started) / 1000;
  // Counters at workload end: bytes a background prefetch fetches later are not on the start path.
  const link = await context.link.resetCounters();
  const metrics = await mount.stop();
  return { seconds, phases: { mount: mounted, workload: workloadSeconds }, link, ...(metrics ? { metrics } : {}) };
}
