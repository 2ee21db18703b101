// Sequential-read detection per open file: once a handle reads on from where its previous
// read ended, the span after the one the read ended in is decoded in the background (up to
// the file's end, never past it), so a streaming reader rarely waits on the network. Files
// that end in the span being read never trigger it.
import type { Inode } from '@clip/archive-format';

export interface SpanLocator {
  spanAt(layerIndex: number, offset: number): { index: number; start: number; end: number } | undefined;
  prefetch(layerIndex: number, offset: number, length: number): Promise<void>;
}

export class Readahead {
  #nextOffset = -1;
  #streak = 0;
  #lastPrefetched = -1;

  constructor(
    private readonly reader: SpanLocator,
    private readonly onSpan: (promise: Promise<void>) => void,
  ) {}

  /** Called after each read of `inode` at [position, position + length). */
  observe(inode: Inode, position: number, length: number): void {
    this.#streak = position === this.#nextOffset ? this.#streak + 1 : 0;
    this.#nextOffset = position + length;
    if (this.#streak < 1 || !inode.data) return;
    const fileEnd = inode.data.offset + inode.size;
    const readEnd = inode.data.offset + Math.min(position + length, inode.size);
    const current = this.reader.spanAt(inode.data.layer, Math.max(inode.data.offset, readEnd - 1));
    if (!current || current.end >= fileEnd) return;
    const next = this.reader.spanAt(inode.data.layer, current.end);
    if (!next || next.index === this.#lastPrefetched) return;
    this.#lastPrefetched = next.index;
    this.onSpan(this.reader.prefetch(inode.data.layer, next.start, Math.min(next.end, fileEnd) - next.start));
  }
}
