// A TCP forwarding proxy that adds latency: every chunk is held for `oneWayDelayMs` in each
// direction (so a round trip costs twice that), in order, with backpressure. It also counts
// what crosses the link: bytes each way, connections, HTTP requests and Range requests.
import { createConnection, createServer, type Server, type Socket } from 'node:net';

export interface ProxyStats {
  /** Bytes from the registry to the clients (what a worker downloads). */
  bytesDown: number;
  bytesUp: number;
  connections: number;
  requests: number;
  /** Requests carrying a Range header. */
  rangeRequests: number;
  /** Requests for blobs (layers, configs). */
  blobRequests: number;
}

export interface DelayProxyOptions {
  listenHost: string;
  listenPort: number;
  upstreamHost: string;
  upstreamPort: number;
  oneWayDelayMs: number;
}

export interface DelayProxy {
  port: number;
  stats(): ProxyStats;
  reset(): ProxyStats;
  close(): Promise<void>;
}

export function emptyStats(): ProxyStats {
  return { bytesDown: 0, bytesUp: 0, connections: 0, requests: 0, rangeRequests: 0, blobRequests: 0 };
}

/** Finds request heads in a client→server byte stream (skipping bodies) to count requests. */
class RequestSniffer {
  private pending = '';
  private bodyLeft = 0;
  private opaque = false;

  constructor(private readonly onRequest: (head: string) => void) {}

  push(chunk: Buffer): void {
    if (this.opaque) return;
    let offset = 0;
    if (this.bodyLeft > 0) {
      const skip = Math.min(this.bodyLeft, chunk.length);
      this.bodyLeft -= skip;
      offset = skip;
    }
    if (offset >= chunk.length) return;
    this.pending += chunk.subarray(offset).toString('latin1');
    for (;;) {
      const end = this.pending.indexOf('\r\n\r\n');
      if (end < 0) break;
      const head = this.pending.slice(0, end);
      this.pending = this.pending.slice(end + 4);
      this.onRequest(head);
      if (/^transfer-encoding:\s*chunked/im.test(head)) {
        // Chunked uploads only happen when pushing; stop parsing this connection.
        this.opaque = true;
        this.pending = '';
        return;
      }
      const length = Number(/^content-length:\s*(\d+)/im.exec(head)?.[1] ?? 0);
      if (length > 0) {
        const available = Math.min(length, this.pending.length);
        this.pending = this.pending.slice(available);
        this.bodyLeft = length - available;
        if (this.bodyLeft > 0) return;
      }
    }
    if (this.pending.length > 1_000_000) this.opaque = true;
  }
}

/** Forwards `from` to `to`, holding each chunk `delayMs`, keeping order and backpressure. */
function delayedPipe(from: Socket, to: Socket, delayMs: number, count: (chunk: Buffer) => void): void {
  const queue: { due: number; chunk: Buffer }[] = [];
  let timer: NodeJS.Timeout | undefined;
  let ended = false;

  const flush = () => {
    timer = undefined;
    const now = performance.now();
    while (queue.length > 0 && queue[0]!.due <= now) {
      const { chunk } = queue.shift()!;
      if (!to.destroyed && !to.write(chunk)) {
        from.pause();
        to.once('drain', () => from.resume());
      }
    }
    if (queue.length > 0) {
      timer = setTimeout(flush, Math.max(0, queue[0]!.due - performance.now()));
    } else if (ended) {
      to.end();
    }
  };

  from.on('data', (chunk: Buffer) => {
    count(chunk);
    if (delayMs <= 0) {
      if (!to.write(chunk)) {
        from.pause();
        to.once('drain', () => from.resume());
      }
      return;
    }
    queue.push({ due: performance.now() + delayMs, chunk });
    timer ??= setTimeout(flush, delayMs);
  });
  from.on('end', () => {
    ended = true;
    if (queue.length === 0 && timer === undefined) to.end();
  });
}

export async function startDelayProxy(options: DelayProxyOptions): Promise<DelayProxy> {
  let stats = emptyStats();
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    stats.connections++;
    const upstream = createConnection({ host: options.upstreamHost, port: options.upstreamPort });
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    sockets.add(client);
    sockets.add(upstream);
    const sniffer = new RequestSniffer((head) => {
      stats.requests++;
      if (/^range:/im.test(head)) stats.rangeRequests++;
      if (/^\S+ \S*\/blobs\//.test(head)) stats.blobRequests++;
    });
    delayedPipe(client, upstream, options.oneWayDelayMs, (chunk) => {
      stats.bytesUp += chunk.length;
      sniffer.push(chunk);
    });
    delayedPipe(upstream, client, options.oneWayDelayMs, (chunk) => {
      stats.bytesDown += chunk.length;
    });
    const destroyBoth = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('error', destroyBoth);
    upstream.on('error', destroyBoth);
    client.on('close', () => {
      sockets.delete(client);
      if (upstream.writableEnded) upstream.destroy();
    });
    upstream.on('close', () => sockets.delete(upstream));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.listenPort, options.listenHost, () => resolve());
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : options.listenPort;
  return {
    port,
    stats: () => ({ ...stats }),
    reset: () => {
      const previous = stats;
      stats = emptyStats();
      return previous;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
