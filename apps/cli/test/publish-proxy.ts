// An HTTP proxy in front of the real registry for the publish tests: logs every request
// (method, URL, status, request body bytes as they arrive), can throttle request bodies
// (a slow uplink, so a push can be interrupted mid-upload) and can fail matching requests.
import { createServer, request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export interface ProxiedRequest {
  method: string;
  url: string;
  /** Request body bytes forwarded so far. */
  bodyBytes: number;
  status?: number;
}

export interface CountingProxy {
  /** `127.0.0.1:<port>`, usable as a registry host. */
  host: string;
  log: ProxiedRequest[];
  connections(): number;
  /** Request body rate in bytes per second per request; undefined = unthrottled. */
  throttle(bytesPerSecond: number | undefined): void;
  /** Answer requests that match with this status instead of forwarding them. */
  failWhen(match: ((method: string, url: string) => boolean) | undefined, status?: number): void;
  stop(): Promise<void>;
}

const PIECE = 16 * 1024;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export async function startCountingProxy(upstreamPort: number): Promise<CountingProxy> {
  const log: ProxiedRequest[] = [];
  const sockets = new Set<Socket>();
  let connections = 0;
  let rate: number | undefined;
  let failing: { match: (method: string, url: string) => boolean; status: number } | undefined;

  const forward = (req: IncomingMessage, res: ServerResponse, entry: ProxiedRequest) => {
    const upstream = httpRequest(
      { hostname: '127.0.0.1', port: upstreamPort, method: req.method, path: req.url, headers: req.headers },
      (response) => {
        entry.status = response.statusCode ?? 502;
        res.writeHead(entry.status, response.headers);
        response.pipe(res);
      },
    );
    upstream.on('error', () => res.socket?.destroy());
    // The body is read eagerly and sent on at the throttled rate, so a client that goes away
    // is noticed at once and the rest of its upload is dropped, as on a real slow link.
    const queue: Buffer[] = [];
    let ended = false;
    let gone = false;
    let wake: (() => void) | undefined;
    const notify = () => {
      wake?.();
      wake = undefined;
    };
    req.on('data', (chunk: Buffer) => {
      queue.push(chunk);
      notify();
    });
    req.on('end', () => {
      ended = true;
      notify();
    });
    res.once('close', () => {
      if (res.writableFinished) return;
      gone = true;
      upstream.destroy();
      notify();
    });
    void (async () => {
      for (;;) {
        if (gone) return;
        const chunk = queue.shift();
        if (!chunk) {
          if (ended) return void upstream.end();
          await new Promise<void>((resolve) => (wake = resolve));
          continue;
        }
        for (let offset = 0; offset < chunk.length && !gone; offset += PIECE) {
          const piece = chunk.subarray(offset, offset + PIECE);
          if (!upstream.write(piece)) await new Promise((resolve) => upstream.once('drain', resolve));
          entry.bodyBytes += piece.length;
          if (rate !== undefined) await sleep((piece.length / rate) * 1000);
        }
      }
    })();
  };

  const server = createServer((req, res) => {
    const entry: ProxiedRequest = { method: req.method ?? 'GET', url: req.url ?? '/', bodyBytes: 0 };
    log.push(entry);
    if (failing?.match(entry.method, entry.url)) {
      req.resume();
      entry.status = failing.status;
      res.writeHead(failing.status, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ errors: [{ code: 'INJECTED', message: `injected ${failing.status}` }] }));
      return;
    }
    void forward(req, res, entry);
  });
  server.on('connection', (socket) => {
    connections++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    host: `127.0.0.1:${port}`,
    log,
    connections: () => connections,
    throttle(bytesPerSecond) {
      rate = bytesPerSecond;
    },
    failWhen(match, status = 500) {
      failing = match ? { match, status } : undefined;
    },
    async stop() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
