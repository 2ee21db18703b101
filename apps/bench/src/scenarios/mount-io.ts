// File system speed through the mount vs the unpacked tree on local disk: first-read latency
// of a small file (cold mount, warm memory, warm disk cache on a second mount), sequential read
// of a big file (cold = first read on a fresh cache, warm = read again; cold also as a share of
// the measured link rate), a metadata walk (`find` printing size/mode/links, i.e. an lstat per
// entry), and the mounter's memory after all that against its memory-cache budget.
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { finishRow, skippedRow, type ResultRow } from '../report/model.js';
import { run, sh } from '../util/exec.js';
import { processMemory } from '../util/rusage.js';
import { scratch, type BenchContext, type PublishedImage } from './context.js';

const READ_TIMER = fileURLToPath(new URL('./read-timer.js', import.meta.url));
/** Passed explicitly (it is clip's default) so the report can state the budget. */
const MEMORY_CACHE = '512MiB';
const MEMORY_CACHE_BYTES = 512 * 2 ** 20;
const MB = 1e6;

async function readSeconds(path: string, direct: boolean): Promise<number> {
  if (direct) {
    // O_DIRECT bypasses the page cache: a cold read of the local copy.
    const result = await run('dd', [`if=${path}`, 'of=/dev/null', 'bs=4M', 'iflag=direct'], { allowFailure: true });
    if (result.code === 0) return result.seconds;
  }
  return (await sh(`cat '${path}' > /dev/null`)).seconds;
}

/** Milliseconds to read `path` whole, measured inside a Node process. */
async function readMs(path: string): Promise<number> {
  const result = await run(process.execPath, [READ_TIMER, path]);
  return (JSON.parse(result.stdout.trim()) as { ms: number[] }).ms[0]!;
}

/** Evicts one file from the page cache (posix_fadvise DONTNEED), nothing else. */
async function evict(path: string): Promise<void> {
  await run('dd', [`if=${path}`, 'iflag=nocache', 'count=0'], { allowFailure: true });
}

const walk = (root: string) => sh(`find '${root}' -printf '%s %m %n %U\\n' | wc -l`);

export async function mountIo(
  context: BenchContext,
  image: PublishedImage,
  unpackedRoot: string | undefined,
  linkMbit?: number,
): Promise<ResultRow[]> {
  const { bench } = image;
  const base = {
    scenario: 'mount I/O',
    image: bench.name,
    profile: context.link.profile.name,
    baselineLabel: 'unpacked tree on local disk',
  };
  if (!unpackedRoot) return [skippedRow({ ...base, variant: 'all', unit: 's', better: 'lower' }, 'no unpacked tree (baseline failed)')];
  const localFile = join(unpackedRoot, bench.bigFile);
  const fileBytes = Number((await run('stat', ['-c', '%s', localFile])).stdout.trim());
  const mbps = (seconds: number) => fileBytes / MB / seconds;
  const localCold = mbps(await readSeconds(localFile, true));
  const localWarm = mbps(await readSeconds(localFile, false));
  // Cold: the kernel's dentry and inode caches dropped first (as on a worker that just
  // unpacked nothing); warm: the same walk again. The mount is compared like for like.
  await run('sh', ['-c', 'sync; echo 2 > /proc/sys/vm/drop_caches'], { allowFailure: true });
  const localWalkCold = await walk(unpackedRoot);
  const localWalk = await walk(unpackedRoot);
  const localSmall = join(unpackedRoot, bench.smallFile);
  await evict(localSmall);
  const localSmallCold = await readMs(localSmall);
  const localSmallWarm = await readMs(localSmall);
  const linkMBps = linkMbit === undefined ? undefined : linkMbit / 8;
  const small = { ...base, unit: 'ms' as const, better: 'lower' as const };
  const rows = {
    smallCold: {
      ...small,
      variant: `first read ${bench.smallFile} (cold: fresh mount + cache)`,
      baselineLabel: 'local file evicted from page cache',
      baseline: localSmallCold,
    },
    smallWarm: {
      ...small,
      variant: `read ${bench.smallFile} again (warm: same mount)`,
      baselineLabel: 'local file, page-cached',
      baseline: localSmallWarm,
    },
    smallDisk: {
      ...small,
      variant: `read ${bench.smallFile} (warm disk: new mount, same --cache-dir)`,
      baselineLabel: 'local file, page-cached',
      baseline: localSmallWarm,
    },
    cold: {
      ...base,
      variant: `sequential read ${bench.bigFile} (cold)`,
      unit: 'MB/s' as const,
      better: 'higher' as const,
      baseline: localCold,
      details: { fileBytes },
    },
    coldLink: {
      ...base,
      variant: `sequential read ${bench.bigFile} (cold), link use`,
      unit: 'MB/s' as const,
      better: 'higher' as const,
      baselineLabel: 'measured link rate (link check)',
      baseline: linkMBps ?? Number.NaN,
    },
    warm: {
      ...base,
      variant: `sequential read ${bench.bigFile} (warm)`,
      unit: 'MB/s' as const,
      better: 'higher' as const,
      baseline: localWarm,
      details: { fileBytes },
    },
    walkCold: {
      ...base,
      variant: 'find + stat of every entry (cold: fresh mount / dropped dentry cache)',
      unit: 's' as const,
      better: 'lower' as const,
      baseline: localWalkCold.seconds,
      details: { entries: Number(localWalk.stdout.trim()) },
    },
    walk: {
      ...base,
      variant: 'find + stat of every entry (warm: second walk)',
      unit: 's' as const,
      better: 'lower' as const,
      baseline: localWalk.seconds,
      details: { entries: Number(localWalk.stdout.trim()) },
    },
    memory: {
      ...base,
      variant: 'mounter peak RSS after the workload',
      unit: 'MB' as const,
      better: 'lower' as const,
      baselineLabel: `--memory-cache budget (${MEMORY_CACHE})`,
      baseline: MEMORY_CACHE_BYTES / MB,
    },
  };
  const reason = image.indexSkipped ?? (await context.clip.unavailable('mount'));
  if (reason || !image.archive) return Object.values(rows).map((row) => skippedRow(row, reason ?? 'no archive'));
  const dir = await scratch(context, 'mount-io');
  const cacheDir = join(dir, 'cache');
  const mountAt = async (name: string) => {
    const mountpoint = join(dir, name);
    await run('mkdir', ['-p', mountpoint]);
    return context.clip.mount(image.archive!, mountpoint, { cacheDir, netns: context.link.netns, memoryCache: MEMORY_CACHE });
  };
  try {
    const out: ResultRow[] = [];
    const mount = await mountAt('image');
    try {
      const mountpoint = mount.mountpoint;
      await context.link.resetCounters();
      const smallCold = await readMs(join(mountpoint, bench.smallFile));
      const smallLink = await context.link.resetCounters();
      const smallWarm = await readMs(join(mountpoint, bench.smallFile));
      out.push(
        finishRow({ ...rows.smallCold, clip: smallCold, clipBytes: smallLink.bytesDown, clipRangeRequests: smallLink.rangeRequests }),
      );
      out.push(finishRow({ ...rows.smallWarm, clip: smallWarm }));
      const walkedCold = await walk(mountpoint);
      const walked = await walk(mountpoint);
      await context.link.resetCounters();
      const cold = await readSeconds(join(mountpoint, bench.bigFile), false);
      const coldLink = await context.link.resetCounters();
      const warm = await readSeconds(join(mountpoint, bench.bigFile), false);
      const memory = await processMemory(mount.pid);
      const wireMBps = coldLink.bytesDown / MB / cold;
      out.push(finishRow({ ...rows.cold, clip: mbps(cold), clipBytes: coldLink.bytesDown, clipRangeRequests: coldLink.rangeRequests }));
      out.push(
        linkMBps === undefined
          ? skippedRow(rows.coldLink, 'no measured link rate')
          : finishRow({
              ...rows.coldLink,
              clip: wireMBps,
              clipBytes: coldLink.bytesDown,
              note: `link use ${(wireMBps / linkMBps).toFixed(2)} (goal ≥ 0.8); file data ${mbps(cold).toFixed(1)} MB/s`,
              details: { linkMBps, wireMBps, fileMBps: mbps(cold), linkUse: wireMBps / linkMBps },
            }),
      );
      out.push(finishRow({ ...rows.warm, clip: mbps(warm) }));
      out.push(
        finishRow({
          ...rows.walkCold,
          clip: walkedCold.seconds,
          details: { entries: Number(localWalk.stdout.trim()), mountEntries: Number(walkedCold.stdout.trim()) },
        }),
      );
      out.push(
        finishRow({
          ...rows.walk,
          clip: walked.seconds,
          details: { entries: Number(localWalk.stdout.trim()), mountEntries: Number(walked.stdout.trim()) },
        }),
      );
      const over = memory.peakBytes - MEMORY_CACHE_BYTES;
      out.push(
        finishRow({
          ...rows.memory,
          clip: memory.peakBytes / MB,
          note: `VmRSS ${(memory.rssBytes / MB).toFixed(0)} MB, VmHWM ${(memory.peakBytes / MB).toFixed(0)} MB: ${over > 0 ? `${(over / MB).toFixed(0)} MB over` : `${(-over / MB).toFixed(0)} MB under`} the budget`,
          details: { ...memory, memoryCacheBytes: MEMORY_CACHE_BYTES, overBudgetBytes: over },
        }),
      );
    } finally {
      await mount.stop();
    }
    // A second mount on the same --cache-dir: empty memory cache and kernel cache, warm disk cache.
    const again = await mountAt('again');
    try {
      await context.link.resetCounters();
      const smallDisk = await readMs(join(again.mountpoint, bench.smallFile));
      const diskLink = await context.link.resetCounters();
      out.splice(
        2,
        0,
        finishRow({ ...rows.smallDisk, clip: smallDisk, clipBytes: diskLink.bytesDown, clipRangeRequests: diskLink.rangeRequests }),
      );
    } finally {
      await again.stop();
    }
    return out;
  } catch (error) {
    return Object.values(rows).map((row) => skippedRow(row, `clip mount failed: ${(error as Error).message.slice(0, 300)}`));
  }
}
