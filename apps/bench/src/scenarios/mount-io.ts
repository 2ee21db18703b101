// File system speed through the mount vs the unpacked tree on local disk: sequential read of
// a big file (cold = first read on a fresh cache, warm = read again), and a metadata walk
// (`find` printing size/mode/links, i.e. an lstat per entry).
import { join } from 'node:path';
import { finishRow, skippedRow, type ResultRow } from '../report/model.js';
import { run, sh } from '../util/exec.js';
import { scratch, type BenchContext, type PublishedImage } from './context.js';

async function readSeconds(path: string, direct: boolean): Promise<number> {
  if (direct) {
    // O_DIRECT bypasses the page cache: a cold read of the local copy.
    const result = await run('dd', [`if=${path}`, 'of=/dev/null', 'bs=4M', 'iflag=direct'], { allowFailure: true });
    if (result.code === 0) return result.seconds;
  }
  return (await sh(`cat '${path}' > /dev/null`)).seconds;
}

const walk = (root: string) => sh(`find '${root}' -printf '%s %m %n %U\\n' | wc -l`);

export async function mountIo(context: BenchContext, image: PublishedImage, unpackedRoot: string | undefined): Promise<ResultRow[]> {
  const { bench } = image;
  const base = { scenario: 'mount I/O', image: bench.name, profile: context.link.profile.name, baselineLabel: 'unpacked tree on local disk' };
  if (!unpackedRoot) return [skippedRow({ ...base, variant: 'all', unit: 's', better: 'lower' }, 'no unpacked tree (baseline failed)')];
  const localFile = join(unpackedRoot, bench.bigFile);
  const fileBytes = Number((await run('stat', ['-c', '%s', localFile])).stdout.trim());
  const mbps = (seconds: number) => fileBytes / 1e6 / seconds;
  const localCold = mbps(await readSeconds(localFile, true));
  const localWarm = mbps(await readSeconds(localFile, false));
  const localWalk = await walk(unpackedRoot);
  const rows = {
    cold: { ...base, variant: `sequential read ${bench.bigFile} (cold)`, unit: 'MB/s' as const, better: 'higher' as const, baseline: localCold, details: { fileBytes } },
    warm: { ...base, variant: `sequential read ${bench.bigFile} (warm)`, unit: 'MB/s' as const, better: 'higher' as const, baseline: localWarm, details: { fileBytes } },
    walk: { ...base, variant: 'find + stat of every entry', unit: 's' as const, better: 'lower' as const, baseline: localWalk.seconds, details: { entries: Number(localWalk.stdout.trim()) } },
  };
  const reason = image.indexSkipped ?? (await context.clip.unavailable('mount'));
  if (reason || !image.archive) return Object.values(rows).map((row) => skippedRow(row, reason ?? 'no archive'));
  const dir = await scratch(context, 'mount-io');
  const mountpoint = join(dir, 'image');
  await run('mkdir', ['-p', mountpoint]);
  try {
    const mount = await context.clip.mount(image.archive, mountpoint, { cacheDir: join(dir, 'cache'), netns: context.link.netns });
    try {
      const walked = await walk(mountpoint);
      await context.link.resetCounters();
      const cold = await readSeconds(join(mountpoint, bench.bigFile), false);
      const coldLink = await context.link.resetCounters();
      const warm = await readSeconds(join(mountpoint, bench.bigFile), false);
      return [
        finishRow({ ...rows.cold, clip: mbps(cold), clipBytes: coldLink.bytesDown, clipRangeRequests: coldLink.rangeRequests }),
        finishRow({ ...rows.warm, clip: mbps(warm) }),
        finishRow({ ...rows.walk, clip: walked.seconds, details: { entries: Number(localWalk.stdout.trim()), mountEntries: Number(walked.stdout.trim()) } }),
      ];
    } finally {
      await mount.stop();
    }
  } catch (error) {
    return Object.values(rows).map((row) => skippedRow(row, `clip mount failed: ${(error as Error).message.slice(0, 300)}`));
  }
}
