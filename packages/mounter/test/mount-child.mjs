// Runs a mount in its own process (FUSE ops run on the JS thread, so the test process must
// not be the one serving the mount). Uses the built packages: run `npx turbo run build` first.
// argv: <archive.clip> <mountpoint> <layers-dir> [cacheDir]
// Layer blobs are read from <layers-dir>/<digest hex>; prints `mounted` when ready and a JSON
// metrics line on SIGTERM after unmounting.
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { readArchiveFile } from '@clip/archive-format';
import { mount } from '../dist/mount.js';

const [archivePath, mountpoint, layersDir, cacheDir] = process.argv.slice(2);
const archive = await readArchiveFile(archivePath);
const fetchRange = async (digest, start, end) => {
  const file = await open(join(layersDir, digest.slice('sha256:'.length)));
  try {
    const buffer = Buffer.alloc(end - start);
    await file.read(buffer, 0, buffer.length, start);
    return buffer;
  } finally {
    await file.close();
  }
};
const handle = await mount({ archive, mountpoint, fetcher: { fetchRange }, ...(cacheDir ? { cacheDir } : {}) });
process.stdout.write('mounted\n');
const stop = async () => {
  await handle.unmount();
  process.stdout.write(`${JSON.stringify(handle.metrics())}\n`);
  process.exit(0);
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
