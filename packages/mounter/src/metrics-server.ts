// Serves a mount's metrics as Prometheus text on http://host:port/metrics.
import { createServer, type Server } from 'node:http';
import { UsageError } from '@clip/shared';
import { MetricsListenError } from './errors.js';
import type { MountMetrics } from './metrics.js';

export interface MetricsServer {
  /** `host:port` actually listened on (port 0 picks a free one). */
  address: string;
  close(): Promise<void>;
}

export function parseHostPort(text: string): { host: string; port: number } {
  const match = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(text);
  const port = match ? Number(match[3]) : NaN;
  if (!match || port > 65535)
    throw new UsageError(`invalid metrics address ${JSON.stringify(text)}: expected host:port, e.g. 127.0.0.1:9100`);
  return { host: match[1] ?? (match[2] || '127.0.0.1'), port };
}

export async function startMetricsServer(listen: string, metrics: MountMetrics, extra?: () => string): Promise<MetricsServer> {
  const { host, port } = parseHostPort(listen);
  const server: Server = createServer((request, response) => {
    if (request.url === '/metrics' || request.url === '/') {
      response.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' });
      response.end(metrics.prometheus() + (extra?.() ?? ''));
    } else {
      response.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) => reject(new MetricsListenError(listen, listenReason(error))));
    server.listen(port, host, () => resolve());
  });
  const address = server.address();
  const actualPort = typeof address === 'object' && address ? address.port : port;
  return {
    address: `${host.includes(':') ? `[${host}]` : host}:${actualPort}`,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

function listenReason(error: NodeJS.ErrnoException): string {
  if (error.code === 'EADDRINUSE') return 'the port is already in use (pick another --metrics port)';
  if (error.code === 'EADDRNOTAVAIL') return "the address is not one of this host's (use 127.0.0.1 or 0.0.0.0)";
  if (error.code === 'EACCES') return 'permission denied (ports below 1024 need privileges)';
  if (error.code === 'ENOTFOUND' || error.code === 'EAI_AGAIN') return 'the host name does not resolve';
  return error.code ?? error.message;
}
