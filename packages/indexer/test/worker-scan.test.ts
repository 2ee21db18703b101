// The worker-thread layer scan (compiled build: the worker decompresses and records
// checkpoints, the main thread walks the tar and hashes it, buffers go back and forth for
// reuse) must give exactly what the in-thread scan gives: entries, spans, windows, digests.
// It needs the compiled worker script, so it runs against dist/ (turbo builds before tests).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import tarStream from 'tar-stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type LayerCompression, storeWindow } from '@clip/archive-format';
import { LayerFormatError, silentLogger } from '@clip/shared';
import { indexLayerInThread, type IndexedLayer } from '../src/pipeline/index-layer.js';
import { chunked, gzipCli, gzipWithFlushes, layerData, zstdCli } from './scan-helpers.js';

const compiled = new URL('../dist/pipeline/layer-indexer.js', import.meta.url);
const workerScript = new URL('../dist/pipeline/scan-worker.js', import.meta.url);
const missing = !existsSync(fileURLToPath(compiled)) || !existsSync(fileURLToPath(workerScript));

type LayerIndexer = {
  index(compressed: AsyncIterable<Uint8Array>, options: Parameters<typeof indexLayerInThread>[1], size?: number): Promise<IndexedLayer>;
  close(): Promise<void>;
};

async function tarOf(files: Array<[string, Buffer]>): Promise<Buffer> {
  const pack = tarStream.pack();
  pack.entry({ name: 'dir', type: 'directory', mode: 0o755 });
  for (const [name, data] of files) pack.entry({ name, mode: 0o644, mtime: new Date(1_700_000_000_000) }, data);
  pack.entry({ name: 'dir/link', type: 'symlink', linkname: '../a' });
  pack.finalize();
  const parts: Buffer[] = [];
  for await (const chunk of pack as unknown as AsyncIterable<Buffer>) parts.push(chunk);
  return Buffer.concat(parts);
}

/** Windows as base64, stored windows checked against the encoder's and then dropped. */
function comparable(layer: IndexedLayer): unknown {
  return {
    entries: layer.entries,
    scan: {
      ...layer.scan,
      spans: layer.scan.spans.map((span) => {
        const { storedWindow, ...checkpoint } = span.checkpoint;
        if (storedWindow) expect(Buffer.from(storedWindow).equals(Buffer.from(storeWindow(checkpoint.window)))).toBe(true);
        return { ...span, checkpoint: { ...checkpoint, window: Buffer.from(checkpoint.window).toString('base64') } };
      }),
    },
  };
}

describe.skipIf(missing)(`worker-thread layer scan${missing ? ' (skipped: not built)' : ''}`, () => {
  let indexer: LayerIndexer;
  let tar: Buffer;
  beforeAll(async () => {
    const { createLayerIndexer } = (await import(compiled.href)) as { createLayerIndexer: (o: object) => Promise<LayerIndexer> };
    indexer = await createLayerIndexer({ workers: true, concurrency: 2, logger: silentLogger });
    tar = await tarOf([
      ['a', layerData(1, 2_500_000)],
      ['dir/b', layerData(2, 3_000_000)],
      ['c', Buffer.alloc(0)],
      ['dir/d', layerData(3, 700_001)],
    ]);
  });
  afterAll(async () => {
    await indexer?.close();
  });

  const cases: Array<[string, LayerCompression, () => Buffer | Promise<Buffer>]> = [
    ['gzip', 'gzip', () => gzipCli(tar, 6)],
    ['gzip with sync flushes', 'gzip', () => gzipWithFlushes(tar, 1, 30_001)],
    [
      'multi-member gzip',
      'gzip',
      () => Buffer.concat([gzipCli(tar.subarray(0, 1_000_000), 6), gzipCli(Buffer.alloc(0), 1), gzipCli(tar.subarray(1_000_000), 9)]),
    ],
    ['zstd', 'zstd', () => zstdCli(tar, ['-B1MiB'])],
    ['uncompressed', 'none', () => tar],
  ];
  for (const [name, compression, make] of cases) {
    it(`${name}: the same entries and scan as in-thread, twice on one pool`, async () => {
      const blob = await make();
      const options = { digest: 'sha256:test', compression, spanSize: 256 * 1024 };
      const local = await indexLayerInThread(chunked(blob, 65_536), options);
      for (let round = 0; round < 2; round++) {
        const remote = await indexer.index(chunked(blob, 100_003), options, blob.length);
        expect(remote.scan.spans.length).toBeGreaterThan(compression === 'zstd' ? 0 : 5);
        expect(comparable(remote)).toEqual(comparable(local));
      }
    });
  }

  it('several large layers: the workers hash the diffIds, the same scans as in-thread', async () => {
    const { createLayerIndexer } = (await import(compiled.href)) as { createLayerIndexer: (o: object) => Promise<LayerIndexer> };
    const size = 2 << 20;
    const shared = await createLayerIndexer({ workers: true, concurrency: 2, logger: silentLogger, layerSizes: [size, size] });
    try {
      for (const [compression, blob] of [
        ['gzip', gzipCli(tar, 6)],
        ['zstd', zstdCli(tar, ['-B1MiB'])],
        ['none', tar],
      ] as const) {
        const options = { digest: 'sha256:test', compression, spanSize: 256 * 1024 };
        const local = await indexLayerInThread(chunked(blob, 65_536), options);
        const [one, two] = await Promise.all([
          shared.index(chunked(blob, 100_003), options, blob.length),
          shared.index(chunked(blob, 65_536), options, blob.length),
        ]);
        expect(comparable(one!)).toEqual(comparable(local));
        expect(comparable(two!)).toEqual(comparable(local));
      }
    } finally {
      await shared.close();
    }
  });

  it('digestVerified skips the gzip CRC-32 on the worker as in-thread; by default a wrong CRC fails', async () => {
    const gz = Buffer.from(gzipCli(tar, 6));
    gz[gz.length - 8]! ^= 0xff;
    const checked = { digest: 'sha256:test', compression: 'gzip' as const, spanSize: 256 * 1024 };
    await expect(indexer.index(chunked(gz, 65_536), checked, gz.length)).rejects.toThrow(LayerFormatError);
    await expect(indexLayerInThread(chunked(gz, 65_536), checked)).rejects.toThrow(/check/);
    const skipped = { ...checked, digestVerified: true };
    const remote = await indexer.index(chunked(gz, 65_536), skipped, gz.length);
    expect(comparable(remote)).toEqual(comparable(await indexLayerInThread(chunked(gz, 65_536), skipped)));
    // Only the blob digest and the last piece's digest tell it from the intact blob.
    const intact = await indexLayerInThread(chunked(gzipCli(tar, 6), 65_536), checked);
    expect(remote.entries).toEqual(intact.entries);
    expect(remote.scan.diffId).toBe(intact.scan.diffId);
    expect(remote.scan.digest).not.toBe(intact.scan.digest);
  });

  it('a corrupt tar and a truncated gzip fail with LayerFormatError, and the pool still works after', async () => {
    // Headers: 'dir' at 0, 'a' at 512, its data, then 'dir/b': garble that header's name field.
    const headerOfB = 1024 + Math.ceil(2_500_000 / 512) * 512;
    const badHeader = Buffer.from(tar);
    expect(badHeader.subarray(headerOfB, headerOfB + 5).toString()).toBe('dir/b');
    badHeader.fill(0x41, headerOfB, headerOfB + 100);
    const options = { digest: 'sha256:test', compression: 'gzip' as const, spanSize: 256 * 1024 };
    await expect(indexer.index(chunked(gzipCli(badHeader, 6), 65_536), options, 1 << 30)).rejects.toBeInstanceOf(LayerFormatError);
    const gz = gzipCli(tar, 6);
    await expect(indexer.index(chunked(gz.subarray(0, gz.length - 1000), 65_536), options, 1 << 30)).rejects.toThrow(/truncated/);
    const again = await indexer.index(chunked(gz, 65_536), options, gz.length);
    expect(comparable(again)).toEqual(comparable(await indexLayerInThread(chunked(gz, 65_536), options)));
  });
});
