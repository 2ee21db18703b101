#!/usr/bin/env python3
"""Bytes a cold start fetches from an unmodified gzip layer for a workload's recorded reads,
depending on where decompression checkpoints sit (docs/benchmarks.md, "Lazy-loading peers").

Model: a read inflates from the last checkpoint at or before its first byte, so it fetches the
compressed bytes from that checkpoint to the deflate block boundary after its last byte; with
clip's span layout that is rounded up to a 128 KiB piece counted from the checkpoint (clip
verifies pieces). Overlapping fetches count once.

usage: sim.py <layer.gz> <blocks.txt from blocks.mjs> <record.txt from clip mount --record>
"""
import bisect
import sys
import tarfile

PIECE = 128 * 1024
WINDOW = 32 * 1024

blob, blocks_file, record_file = sys.argv[1:4]
bounds = [tuple(map(int, line.split())) for line in open(blocks_file) if line.strip()]
comp = [c for c, _ in bounds]
unc = [u for _, u in bounds]

files, links = {}, {}
with tarfile.open(blob, mode='r|gz') as tar:
    for member in tar:
        name = '/' + member.name.lstrip('./')
        if member.islnk():
            links[name] = '/' + member.linkname.lstrip('./')
        elif member.isreg():
            files[name] = (member.offset_data, member.size)

ranges = []
for line in open(record_file):
    path, _, spec = line.rstrip('\n').partition('\t')
    if not path:
        continue
    path = links.get(path, path)
    if path not in files:
        print(f'not a regular file of this layer: {path}', file=sys.stderr)
        continue
    offset, size = files[path]
    for item in spec.split(',') if spec else [f'0-{size}']:
        start, end = map(int, item.split('-'))
        ranges.append((offset + start, offset + min(end, size)))
ranges.sort()


def block_before(u):
    """Compressed offset of the last block boundary at or before uncompressed offset u."""
    return comp[max(bisect.bisect_right(unc, u) - 1, 0)]


def block_after(u):
    return comp[min(bisect.bisect_left(unc, u), len(comp) - 1)]


def union(intervals):
    total, current = 0, None
    for start, end in sorted(intervals):
        if current and start <= current[1]:
            current[1] = max(current[1], end)
        else:
            total += current[1] - current[0] if current else 0
            current = [start, end]
    return total + (current[1] - current[0] if current else 0)


def span_checkpoints(span):
    """clip's layout: a checkpoint at the first block boundary after every `span` bytes of output."""
    points, due = [], 0
    for c, u in bounds:
        if u >= due:
            points.append(c)
            due = u + span
    return points


def fetched(checkpoints, pieces):
    checkpoints = sorted(set(checkpoints))
    intervals = []
    for start, end in ranges:
        origin = checkpoints[bisect.bisect_right(checkpoints, block_before(start)) - 1]
        stop = block_after(end)
        if pieces:
            stop = origin + -(-(stop - origin) // PIECE) * PIECE
        intervals.append((origin, stop))
    return union(intervals)


def report(label, checkpoints, extra):
    windows = f', +{extra} checkpoints ({extra * WINDOW / 2**20:.1f} MiB of windows before compression)' if extra else ''
    print(f'{label}: {len(set(checkpoints))} checkpoints{windows}, fetch {fetched(checkpoints, True) / 1e6:.1f} MB (to the block after each read: {fetched(checkpoints, False) / 1e6:.1f} MB)')


hot = sum(end - start for start, end in ranges)
print(f'{len(ranges)} recorded ranges, {hot / 1e6:.1f} MB of {unc[-1] / 1e6:.1f} MB uncompressed; {len(bounds)} deflate blocks')
base = span_checkpoints(4 << 20)
report('4 MiB spans (default)', base, 0)
report('1 MiB spans', span_checkpoints(1 << 20), 0)
profiled = {block_before(start) for start, _ in ranges} - set(base)
report('4 MiB spans + a checkpoint before each recorded range (profile)', base + list(profiled), len(profiled))
for minimum in (16 << 10, 64 << 10, 256 << 10):
    starts = {block_before(offset) for offset, size in files.values() if size >= minimum} - set(base)
    report(f'4 MiB spans + a checkpoint before every file >= {minimum >> 10} KiB (no profile)', base + list(starts), len(starts))
