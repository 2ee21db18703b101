// The prefetch-list text (`clip mount --record` writes it, `--prefetch` and a published profile
// read it): one file per line, `<path>` (the whole file) or `<path>\t<start>-<end>[,…]` (byte
// ranges of the file, end exclusive); `#` starts a comment line. The one parser of that text.

export interface PrefetchEntry {
  path: string;
  /** Byte ranges of the file; absent = the whole file. */
  ranges?: Array<[number, number]>;
}

export function parsePrefetchList(text: string): PrefetchEntry[] {
  const entries: PrefetchEntry[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trimEnd();
    if (line.trim() === '' || line.startsWith('#')) continue;
    const tab = line.lastIndexOf('\t');
    const ranges = tab < 0 ? undefined : parseRanges(line.slice(tab + 1));
    entries.push(ranges ? { path: line.slice(0, tab), ranges } : { path: line.trim() });
  }
  return entries;
}

function parseRanges(text: string): Array<[number, number]> | undefined {
  const ranges: Array<[number, number]> = [];
  for (const part of text.split(',')) {
    const match = /^(\d+)-(\d+)$/.exec(part);
    if (!match) return undefined;
    const start = Number(match[1]);
    const end = Number(match[2]);
    if (end > start) ranges.push([start, end]);
  }
  return ranges;
}
