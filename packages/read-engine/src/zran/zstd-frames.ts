// Finds zstd frame boundaries in a stream without decompressing: walks frame headers and
// block headers (RFC 8878 §3.1). Frames are the only places a zstd stream can be resumed.
import { LayerFormatError } from '@clip/shared';

const ZSTD_MAGIC = 0xfd2fb528;
const SKIPPABLE_MASK = 0xfffffff0;
const SKIPPABLE_MAGIC = 0x184d2a50;

type State = 'magic' | 'descriptor' | 'block-header' | 'skippable-size' | 'skip';

export interface FrameEnd {
  /** Offset within the pushed chunk where the frame ends (exclusive). */
  end: number;
  skippable: boolean;
}

export class ZstdFrameSplitter {
  private state: State = 'magic';
  private readonly header = new Uint8Array(4);
  private have = 0;
  private need = 4;
  private skip = 0;
  private afterSkip: 'frame-end' | 'block-header' = 'block-header';
  private checksum = false;
  private skippable = false;
  /** Absolute stream offset, for error messages. */
  private position = 0;

  /** True between frames (nothing pending): the stream may end here. */
  get atFrameBoundary(): boolean {
    return this.state === 'magic' && this.have === 0;
  }

  /** Feeds the next bytes; returns where frames ended inside them. */
  push(chunk: Uint8Array): FrameEnd[] {
    const ends: FrameEnd[] = [];
    let i = 0;
    while (i < chunk.length) {
      if (this.state === 'skip') {
        const take = Math.min(this.skip, chunk.length - i);
        this.skip -= take;
        i += take;
        if (this.skip === 0) {
          if (this.afterSkip === 'frame-end') {
            ends.push({ end: i, skippable: this.skippable });
            this.expect('magic', 4);
          } else this.expect('block-header', 3);
        }
        continue;
      }
      this.header[this.have++] = chunk[i++]!;
      if (this.have < this.need) continue;
      this.onHeader(this.position + i);
      // A header can complete a frame with nothing to skip (empty skippable frame).
      if ((this.state as State) === 'skip' && this.skip === 0 && this.afterSkip === 'frame-end') {
        ends.push({ end: i, skippable: this.skippable });
        this.expect('magic', 4);
      }
    }
    this.position += chunk.length;
    return ends;
  }

  private expect(state: State, need: number): void {
    this.state = state;
    this.need = need;
    this.have = 0;
  }

  private skipThen(count: number, then: 'frame-end' | 'block-header'): void {
    this.state = 'skip';
    this.skip = count;
    this.afterSkip = then;
    this.have = 0;
  }

  private onHeader(at: number): void {
    const h = this.header;
    switch (this.state) {
      case 'magic': {
        const magic = (h[0]! | (h[1]! << 8) | (h[2]! << 16) | (h[3]! << 24)) >>> 0;
        if (magic === ZSTD_MAGIC) {
          this.skippable = false;
          this.expect('descriptor', 1);
        } else if ((magic & SKIPPABLE_MASK) >>> 0 === SKIPPABLE_MAGIC) {
          this.skippable = true;
          this.expect('skippable-size', 4);
        } else {
          throw new LayerFormatError(`zstd stream: no frame magic at byte ${at - 4}`);
        }
        return;
      }
      case 'skippable-size': {
        const size = (h[0]! | (h[1]! << 8) | (h[2]! << 16) | (h[3]! << 24)) >>> 0;
        this.skipThen(size, 'frame-end');
        return;
      }
      case 'descriptor': {
        const d = h[0]!;
        if (d & 0x08) throw new LayerFormatError(`zstd stream: reserved frame header bit set at byte ${at - 1}`);
        const fcsFlag = d >> 6;
        const singleSegment = (d >> 5) & 1;
        this.checksum = ((d >> 2) & 1) === 1;
        const dictionaryIdBytes = [0, 1, 2, 4][d & 3]!;
        const contentSizeBytes = [singleSegment, 2, 4, 8][fcsFlag]!;
        this.skipThen((singleSegment ? 0 : 1) + dictionaryIdBytes + contentSizeBytes, 'block-header');
        if (this.skip === 0) this.expect('block-header', 3);
        return;
      }
      case 'block-header': {
        const v = h[0]! | (h[1]! << 8) | (h[2]! << 16);
        const last = (v & 1) === 1;
        const type = (v >> 1) & 3;
        const size = v >>> 3;
        if (type === 3) throw new LayerFormatError(`zstd stream: reserved block type at byte ${at - 3}`);
        const body = type === 1 ? 1 : size; // RLE blocks store one byte
        const tail = last && this.checksum ? 4 : 0;
        this.skipThen(body + tail, last ? 'frame-end' : 'block-header');
        if (this.skip === 0) {
          // Nothing to skip: move on immediately (an empty last block ends the frame right here).
          if (!last) this.expect('block-header', 3);
        }
        return;
      }
      case 'skip':
        return;
    }
  }
}

/** Length of the longest prefix of `bytes` made of complete frames (bytes must start at a frame). */
export function completeFramesLength(bytes: Uint8Array): number {
  const ends = new ZstdFrameSplitter().push(bytes);
  return ends.length === 0 ? 0 : ends[ends.length - 1]!.end;
}
