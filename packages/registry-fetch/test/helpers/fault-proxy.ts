// A small HTTP proxy in front of a real registry that injects faults into matching requests:
// connection resets (before or in the middle of a body), error statuses (with headers such as
// Retry-After), Range ignored (answer 200 with the whole blob), or no answer at all.
import { createServer, request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export type Fault =
  | { kind: 'reset' }
  | { kind: 'reset-mid-body'; afterBytes: number }
  | { kind: 'status'; status: number; headers?: Record<string, string> }
  | { kind: 'ignore-range' }
  | { kind: 'hang' };

export interface ProxyLogEntry {
  method: string;
  url: string;
  range: string | undefined;
  authorization: boolean;
  fault: Fault['kind'] | 'none';
}

export interface ScriptedProxy {
  /** `127.0.0.1:<port>`, usable as a registry host. */
  host: string;
  log: ProxyLogEntry[];
  /** Faults applied, in order, to the next requests that `match`. */
  inject(faults: Fault[], match?: (method: string, url: string) => boolean): void;
  stop(): Promise<void>;
}

export async function startScriptedProxy(upstream: { hostname: string; port: number }): Promise<ScriptedProxy> {
  let pending: Fault[] = [];
  let matcher: (method: string, url: string) => boolean = () => true;
  const log: ProxyLogEntry[] = [];
  const sockets = new Set<Socket>();

  const forward = (req: IncomingMessage, res: ServerResponse, fault: Fault | undefined) => {
    const headers = { ...req.headers };
    if (fault?.kind === 'ignore-range') delete headers['range'];
    const upstreamRequest = httpRequest(
      { hostname: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers },
      (upstreamResponse) => {
        const responseHeaders = { ...upstreamResponse.headers };
        res.writeHead(upstreamResponse.statusCode ?? 502, responseHeaders);
        if (fault?.kind === 'reset-mid-body') {
          let sent = 0;
          upstreamResponse.on('data', (chunk: Buffer) => {
            if (sent + chunk.length >= fault.afterBytes) {
              res.write(chunk.subarray(0, Math.max(0, fault.afterBytes - sent)));
              upstreamResponse.destroy();
              // Let the partial body go out, then cut the connection.
              setTimeout(() => res.socket?.destroy(), 20);
              sent = fault.afterBytes;
              return;
            }
            sent += chunk.length;
            res.write(chunk);
          });
          upstreamResponse.on('end', () => res.end());
          return;
        }
        upstreamResponse.pipe(res);
      },
    );
    upstreamRequest.on('error', () => res.socket?.destroy());
    req.pipe(upstreamRequest);
  };

  const server = createServer((req, res) => {
    const method = req.method ?? 'GET';
    const url = req.url ?? '/';
    const fault = matcher(method, url) ? pending.shift() : undefined;
    log.push({ method, url, range: req.headers['range'], authorization: req.headers['authorization'] !== undefined, fault: fault?.kind ?? 'none' });
    if (!fault || fault.kind === 'ignore-range' || fault.kind === 'reset-mid-body') return forward(req, res, fault);
    if (fault.kind === 'reset') return req.socket.destroy();
    if (fault.kind === 'hang') return; // never answer; stop() closes the socket
    req.resume();
    res.writeHead(fault.status, { 'content-type': 'application/json', ...fault.headers });
    res.end(JSON.stringify({ errors: [{ code: 'INJECTED', message: `injected ${fault.status}` }] }));
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    host: `127.0.0.1:${port}`,
    log,
    inject(faults, match) {
      pending = [...faults];
      matcher = match ?? (() => true);
    },
    async stop() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
