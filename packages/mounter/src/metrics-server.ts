// Serves a mount's metrics as Prometheus text on http://host:port/metrics.
import { createServer, type Server } from 'node:http';
import { UsageError } from '@clip/shared';
import type { MountMetrics } from './metrics.js';

export interface MetricsServer {
  /** `host:port` actually listened on (port 0 picks a free one). */
  address: string;
  close(): Promise<void>;
}

export function parseHostPort(text: string): { host: string; port: number } {
  const match = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(text);
  const port = match ? Number(match[3]) : NaN;
  if (!match || port > 65535) throw new UsageError(`invalid metrics address ${JSON.stringify(text)}: expected host:port, e.g. 127.0.0.1:9100`);
  return { host: match[1] ?? (match[2] || '127.0.0.1'), port };
}

export async function startMetricsServer(listen: string, metrics: MountMetrics): Promise<MetricsServer> {
  const { host, port } = parseHostPort(listen);
  const server: Server = createServer((request, response) => {
    if (request.url === '/metrics' || request.url === '/') {
      response.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' });
      response.end(metrics.prometheus());
    } else {
      response.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const address = server.address();
  const actualPort = typeof address === 'object' && address ? address.port : port;
  return {
    address: `${host.includes(':') ? `[${host}]` : host}:${actualPort}`,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
