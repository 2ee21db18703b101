// The portable gzip block inflater: pako 3's port of zlib inflate, driven exactly like the
// native addon (same run() contract and events), so gzip-scan.ts applies one policy to both.
import { ZStream, Z_BLOCK, Z_BUF_ERROR, Z_STREAM_END, zlibInflate, zlibInflateEnd, zlibInflateInit2, zlibInflateReset } from 'pako';
import { ERROR_STALL, EVENT_BOUNDARY, EVENT_MEMBER_END, EVENT_MEMBER_START, EVENT_STRIDE, type GzipBlockInflater } from '@clip/native-zran';

/** data_type bits after inflate(): 128 = stopped at a block boundary, 64 = that block was the last, 0-7 = unused bits. */
const END_OF_BLOCK = 128;
const LAST_BLOCK = 64;

export class PakoBlockInflater implements GzipBlockInflater {
  private readonly strm = new ZStream();
  private ended = false;

  constructor() {
    // 15 + 16: gzip wrapper only, 32 KiB window.
    if (zlibInflateInit2(this.strm, 15 + 16) !== 0) throw new Error('pako: cannot initialise inflate');
  }

  run(input: Uint8Array, inStart: number, output: Uint8Array, outStart: number, events: Int32Array, ends: Int32Array): number {
    const strm = this.strm;
    strm.input = input;
    strm.next_in = inStart;
    strm.avail_in = input.length - inStart;
    strm.output = output as Uint8Array<ArrayBuffer>;
    strm.next_out = outStart;
    strm.avail_out = output.length - outStart;
    const capacity = Math.floor(events.length / EVENT_STRIDE);
    if (capacity < 2 || ends.length < 2) throw new TypeError('pako inflater: events needs room for 2 events and ends for 2 indexes');
    let count = 0;
    let status = 0;
    const push = (kind: number, bits: number): void => {
      const at = EVENT_STRIDE * count++;
      events[at] = kind;
      events[at + 1] = strm.next_in;
      events[at + 2] = strm.next_out;
      events[at + 3] = bits;
    };
    while (strm.avail_in > 0 && strm.avail_out > 0 && count + 2 <= capacity) {
      if (this.ended) {
        // Another gzip member follows: start over with an empty window.
        this.ended = false;
        zlibInflateReset(strm);
        push(EVENT_MEMBER_START, 0);
      }
      const inBefore = strm.avail_in;
      const outBefore = strm.avail_out;
      const ret = zlibInflate(strm, Z_BLOCK);
      if (ret === Z_BUF_ERROR && strm.avail_in === inBefore && strm.avail_out === outBefore) {
        status = ERROR_STALL;
        break;
      }
      if (ret < 0 && ret !== Z_BUF_ERROR) {
        status = ret;
        break;
      }
      if (ret === Z_STREAM_END) {
        this.ended = true;
        push(EVENT_MEMBER_END, 0);
      } else if ((strm.data_type & END_OF_BLOCK) !== 0 && (strm.data_type & LAST_BLOCK) === 0) {
        push(EVENT_BOUNDARY, strm.data_type & 7);
      }
    }
    ends[0] = strm.next_in;
    ends[1] = strm.next_out;
    return status < 0 ? status : count;
  }

  message(): string | null {
    return this.strm.msg || null;
  }

  memberEnded(): boolean {
    return this.ended;
  }

  close(): void {
    zlibInflateEnd(this.strm);
  }
}
