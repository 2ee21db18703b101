// A static file server for tests (archives served by URL): GET with single-range support, counting requests and body
// bytes, so tests can assert what a reader fetched. Files are loaded into memory up front:
// the test process reads the FUSE mount with async fs calls that can fill libuv's thread
// pool, so the server must not need that pool to answer (it would deadlock).
import { createServer, type Server } from 'node:http';
import { readFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';

export interface RangeServer {
  url(name: string): string;
  stats: { requests: number; bytes: number; ranges: string[] };
  reset(): void;
  close(): Promise<void>;
}

/** Serves files of `files` (URL name → path) on 127.0.0.1. */
export async function startRangeServer(files: Map<string, string>): Promise<RangeServer> {
  const stats = { requests: 0, bytes: 0, ranges: [] as string[] };
  const loaded = new Map<string, Buffer>();
  for (const [name, path] of files) loaded.set(name, await readFile(path));
  const server: Server = createServer((req, res) => {
    void (async () => {
      stats.requests++;
      const bytes = loaded.get((req.url ?? '').slice(1));
      if (req.method !== 'GET' || !bytes) {
        res.writeHead(404).end();
        return;
      }
      const size = bytes.length;
      const match = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
      let start = 0;
      let end = size - 1;
      if (match) {
        start = Number(match[1]);
        end = match[2] ? Math.min(Number(match[2]), size - 1) : size - 1;
        if (start >= size) {
          res.writeHead(416, { 'content-range': `bytes */${size}` }).end();
          return;
        }
      }
      const body = bytes.subarray(start, end + 1);
      stats.bytes += body.length;
      stats.ranges.push(`${start}-${end}`);
      res.writeHead(match ? 206 : 200, {
        'content-length': body.length,
        ...(match ? { 'content-range': `bytes ${start}-${end}/${size}` } : {}),
      });
      res.end(body);
    })().catch(() => res.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: (name) => `http://127.0.0.1:${port}/${name}`,
    stats,
    reset() {
      stats.requests = 0;
      stats.bytes = 0;
      stats.ranges = [];
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
