// One display for both halves of `clip publish`. On a terminal: a block of lines redrawn in
// place (indexing, pushing overall, one line per layer, the archive); otherwise plain lines
// as things finish, which is what logs and tests read.
import type { IndexProgress } from '@clip/indexer';
import { type Digest, formatSize } from '@clip/shared';
import type { PushProgress } from '@clip/registry-fetch';

const BAR_WIDTH = 20;
const REDRAW_MS = 100;

type LayerState = { digest: Digest; size: number; sent: number; state: 'waiting' | 'uploading' | 'uploaded' | 'exists' | 'mounted' };
type ArchiveState = 'waiting' | 'pushing' | 'published';

export interface PublishDisplay {
  plan(layers: Array<{ digest: Digest; size: number }>): void;
  index(progress: IndexProgress): void;
  push(progress: PushProgress): void;
  stage(stage: 'index-done' | 'push-done' | 'archive-push' | 'done'): void;
  /** Writes a log line above the live block (pass as the logger's `write`). */
  log(line: string): void;
  finish(): void;
}

const short = (digest: string) => digest.slice(0, 19);

function bar(fraction: number): string {
  const filled = Math.round(Math.max(0, Math.min(1, fraction)) * BAR_WIDTH);
  return `[${'#'.repeat(filled)}${'-'.repeat(BAR_WIDTH - filled)}]`;
}

export function createPublishDisplay(stream: NodeJS.WriteStream, now: () => number = () => performance.now()): PublishDisplay {
  const started = now();
  const layers = new Map<Digest, LayerState>();
  let index: IndexProgress | undefined;
  let push: PushProgress | undefined;
  let lastUploaded = 0;
  let archive: ArchiveState = 'waiting';
  let lastIndexLayers = -1;

  const tty = stream.isTTY === true;
  let drawnLines = 0;
  let lastDraw = -Infinity;

  const indexLine = () =>
    index
      ? `index   ${bar(index.bytesTotal > 0 ? index.bytesRead / index.bytesTotal : index.layersDone / Math.max(1, index.layersTotal))} ` +
        `${index.layersDone}/${index.layersTotal} layers  ${formatSize(index.bytesRead)} / ${formatSize(index.bytesTotal)}`
      : 'index   waiting';
  const pushLine = () => {
    if (!push) return 'push    waiting';
    const elapsed = Math.max((now() - started) / 1000, 0.001);
    return (
      `push    ${bar(push.bytesTotal > 0 ? push.bytesDone / push.bytesTotal : 1)} ${formatSize(push.bytesDone)} / ${formatSize(push.bytesTotal)}  ` +
      `${formatSize(push.bytesUploaded / elapsed)}/s  blobs ${push.blobsDone}/${push.blobsTotal}`
    );
  };
  const layerLine = (layer: LayerState) => {
    const what =
      layer.state === 'uploading'
        ? `uploading ${Math.floor((100 * layer.sent) / Math.max(1, layer.size))}%`
        : layer.state === 'exists'
          ? 'already in the registry'
          : layer.state;
    return `  ${short(layer.digest)}  ${formatSize(layer.size).padStart(9)}  ${what}`;
  };

  const draw = (force = false) => {
    const t = now();
    if (!force && t - lastDraw < REDRAW_MS) return;
    lastDraw = t;
    const lines = [indexLine(), pushLine(), ...[...layers.values()].map(layerLine), `archive ${archive}`];
    let out = drawnLines > 0 ? `\x1b[${drawnLines}A` : '';
    for (const line of lines) out += `\r\x1b[2K${line}\n`;
    stream.write(out);
    drawnLines = lines.length;
  };
  const say = (line: string) => stream.write(`${line}\n`);

  return {
    plan(planned) {
      for (const layer of planned) layers.set(layer.digest, { ...layer, sent: 0, state: 'waiting' });
      if (tty) draw(true);
    },
    index(progress) {
      index = progress;
      if (tty) return draw();
      if (progress.layersDone !== lastIndexLayers) {
        lastIndexLayers = progress.layersDone;
        say(`index: ${progress.layersDone}/${progress.layersTotal} layers, ${formatSize(progress.bytesRead)} read`);
      }
    },
    push(progress) {
      push = progress;
      const layer = progress.digest ? layers.get(progress.digest) : undefined;
      if (progress.event === 'bytes' && layer) {
        layer.sent += progress.bytesUploaded - lastUploaded;
        layer.state = 'uploading';
      }
      lastUploaded = progress.bytesUploaded;
      if (layer && progress.event === 'blob-uploaded') layer.state = 'uploaded';
      if (layer && progress.event === 'blob-exists') layer.state = 'exists';
      if (layer && progress.event === 'blob-mounted') layer.state = 'mounted';
      if (tty) return draw(progress.event !== 'bytes');
      const done = `[${progress.blobsDone}/${progress.blobsTotal}]`;
      if (progress.event === 'blob-uploaded') say(`push: ${done} uploaded ${short(progress.digest ?? '')}`);
      else if (progress.event === 'blob-exists') say(`push: ${done} exists   ${short(progress.digest ?? '')}`);
      else if (progress.event === 'blob-mounted') say(`push: ${done} mounted  ${short(progress.digest ?? '')}`);
      else if (progress.event === 'tag') say(`push: tagged ${progress.digest ?? ''}`);
    },
    stage(stage) {
      if (stage === 'archive-push') archive = 'pushing';
      if (stage === 'done') archive = 'published';
      if (tty) return draw(true);
      if (stage === 'index-done') say('index: done');
      else if (stage === 'push-done') say('push: done');
      else if (stage === 'archive-push') say('archive: pushing');
      else say('archive: published');
    },
    log(line) {
      if (!tty || drawnLines === 0) return say(line);
      stream.write(`\x1b[${drawnLines}A\r\x1b[J${line}\n`);
      drawnLines = 0;
      draw(true);
    },
    finish() {
      if (tty && drawnLines > 0) draw(true);
    },
  };
}
