// A fault-injecting HTTP proxy in front of a real registry, for reliability tests. Each
// request that `match`es (default: blob GETs with a Range header) draws one fault at the
// configured rates from a seeded generator, so a run is reproducible up to scheduling:
//
//   reset              connection closed before any answer
//   reset-mid-body     headers and part of the body, then the connection is closed
//   stall              no answer at all (the socket is held until the client gives up)
//   stall-mid-body     headers and part of the body, then nothing more
//   status-500/503     a registry error answer
//   status-429         rate limited, with `Retry-After: 1`
//   truncate           a well-framed 206 whose body is shorter than its Content-Range says
//   flip               the right status and headers, one bit of the body flipped
//   wrong-content-range  a different range than asked for, honestly labelled
//   shifted-body       a different range than asked for, labelled as the one asked for
//   ignore-range       the Range header dropped: 200 with the whole blob
//
// Everything else is forwarded untouched. Rates can be changed while running (e.g. all
// resets to take the "registry" down, then none to bring it back).
import { createServer, request as httpRequest, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export const FAULT_KINDS = [
  'reset',
  'reset-mid-body',
  'stall',
  'stall-mid-body',
  'status-500',
  'status-503',
  'status-429',
  'truncate',
  'flip',
  'wrong-content-range',
  'shifted-body',
  'ignore-range',
] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];
export type FaultRates = Partial<Record<FaultKind, number>>;

export interface FaultProxyOptions {
  upstream: { hostname: string; port: number };
  /** Probability of each fault per matching request; their sum must be at most 1. */
  rates?: FaultRates;
  seed?: number;
  /** Which requests may get a fault; default blob GETs with a Range header. */
  match?: (req: IncomingMessage) => boolean;
}

export interface FaultProxyStats {
  requests: number;
  matched: number;
  faults: Record<FaultKind, number>;
  /** Sum of `faults`. */
  injected: number;
}

export interface FaultProxy {
  /** `127.0.0.1:<port>`, usable as the registry part of an image reference. */
  host: string;
  port: number;
  setRates(rates: FaultRates): void;
  stats(): FaultProxyStats;
  stop(): Promise<void>;
}

const RANGE_RE = /^bytes=(\d+)-(\d+)$/;
const CONTENT_RANGE_RE = /^bytes (\d+)-(\d+)\/(\d+|\*)$/;

function defaultMatch(req: IncomingMessage): boolean {
  return req.method === 'GET' && /\/blobs\/sha256:[0-9a-f]{64}$/.test(req.url ?? '') && typeof req.headers['range'] === 'string';
}

/** mulberry32. */
function prng(seed: number): () => number {
  let s = seed | 0;
  return () => {
    s = (s + 0x6d2b79f5) | 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

function checkRates(rates: FaultRates): void {
  let sum = 0;
  for (const [kind, rate] of Object.entries(rates)) {
    if (!(FAULT_KINDS as readonly string[]).includes(kind)) throw new Error(`unknown fault kind ${kind}`);
    if (!(rate >= 0 && rate <= 1)) throw new Error(`bad rate ${rate} for ${kind}`);
    sum += rate;
  }
  if (sum > 1 + 1e-9) throw new Error(`fault rates add up to ${sum} > 1`);
}

interface Upstream {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

export async function startFaultProxy(options: FaultProxyOptions): Promise<FaultProxy> {
  const { upstream } = options;
  const match = options.match ?? defaultMatch;
  const random = prng(options.seed ?? 1);
  let rates: FaultRates = {};
  const setRates = (next: FaultRates) => {
    checkRates(next);
    rates = { ...next };
  };
  setRates(options.rates ?? {});
  const faults = Object.fromEntries(FAULT_KINDS.map((kind) => [kind, 0])) as Record<FaultKind, number>;
  let requests = 0;
  let matched = 0;
  const sockets = new Set<Socket>();

  const draw = (): FaultKind | undefined => {
    let x = random();
    for (const kind of FAULT_KINDS) {
      const rate = rates[kind] ?? 0;
      if (x < rate) return kind;
      x -= rate;
    }
    return undefined;
  };

  const upstreamHeaders = (req: IncomingMessage, range: string | undefined): IncomingHttpHeaders => {
    const headers = { ...req.headers, host: `${upstream.hostname}:${upstream.port}` };
    if (range === undefined) delete headers['range'];
    else headers['range'] = range;
    return headers;
  };

  /** Forwards as a stream (no fault, or ignore-range). */
  const pipeThrough = (req: IncomingMessage, res: ServerResponse, range: string | undefined) => {
    const out = httpRequest(
      { hostname: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: upstreamHeaders(req, range) },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
        answer.on('error', () => res.socket?.destroy());
      },
    );
    out.on('error', () => res.socket?.destroy());
    req.pipe(out);
  };

  /** Fetches a whole upstream answer into memory (ranges are small). */
  const fetchUpstream = (req: IncomingMessage, range: string | undefined): Promise<Upstream> =>
    new Promise((resolve, reject) => {
      const out = httpRequest(
        { hostname: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: upstreamHeaders(req, range) },
        (answer) => {
          const chunks: Buffer[] = [];
          answer.on('data', (chunk: Buffer) => chunks.push(chunk));
          answer.on('end', () => resolve({ status: answer.statusCode ?? 502, headers: answer.headers, body: Buffer.concat(chunks) }));
          answer.on('error', reject);
        },
      );
      out.on('error', reject);
      out.end();
    });

  const respond = (res: ServerResponse, status: number, headers: IncomingHttpHeaders, body: Buffer) => {
    const h: IncomingHttpHeaders = { ...headers, 'content-length': String(body.length) };
    delete h['transfer-encoding'];
    res.writeHead(status, h);
    res.end(body);
  };

  const injectBodyFault = async (kind: FaultKind, req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const range = req.headers['range'] as string;
    const asked = RANGE_RE.exec(range);
    const answer = await fetchUpstream(req, range);
    if (answer.status !== 206 || !asked) return respond(res, answer.status, answer.headers, answer.body);
    const start = Number(asked[1]);
    const end = Number(asked[2]);
    const body = answer.body;
    switch (kind) {
      case 'reset-mid-body':
      case 'stall-mid-body': {
        res.writeHead(answer.status, { ...answer.headers, 'content-length': String(body.length) });
        res.write(body.subarray(0, Math.floor(body.length / 2)));
        if (kind === 'reset-mid-body') setTimeout(() => res.socket?.destroy(), 10);
        return; // stall: keep the socket open until the client gives up
      }
      case 'truncate': {
        const cut = Math.floor(random() * body.length);
        return respond(res, 206, answer.headers, body.subarray(0, cut));
      }
      case 'flip': {
        const flipped = Buffer.from(body);
        if (flipped.length > 0) flipped[Math.floor(random() * flipped.length)]! ^= 1 << Math.floor(random() * 8);
        return respond(res, 206, answer.headers, flipped);
      }
      case 'wrong-content-range':
      case 'shifted-body': {
        const total = CONTENT_RANGE_RE.exec(String(answer.headers['content-range'] ?? ''))?.[3];
        const size = total && total !== '*' ? Number(total) : end + 1;
        // Another range of the same length, moved within the blob.
        const length = end - start + 1;
        const shift = start > 0 ? -1 - Math.floor(random() * Math.min(start, 4096)) : Math.min(1 + Math.floor(random() * 4096), Math.max(0, size - end - 1));
        if (shift === 0) return respond(res, 206, answer.headers, Buffer.alloc(0));
        const other = await fetchUpstream(req, `bytes=${start + shift}-${start + shift + length - 1}`);
        const headers = kind === 'shifted-body' ? answer.headers : other.headers;
        return respond(res, other.status, headers, other.body);
      }
      default:
        return respond(res, answer.status, answer.headers, body);
    }
  };

  const server = createServer((req, res) => {
    requests++;
    const matches = match(req);
    if (matches) matched++;
    const kind = matches ? draw() : undefined;
    if (kind) faults[kind]++;
    switch (kind) {
      case undefined:
        return pipeThrough(req, res, req.headers['range']);
      case 'ignore-range':
        return pipeThrough(req, res, undefined);
      case 'reset':
        return req.socket.destroy();
      case 'stall':
        return; // never answer; the client times out (or stop() closes the socket)
      case 'status-500':
      case 'status-503':
      case 'status-429': {
        req.resume();
        const status = Number(kind.slice(-3));
        res.writeHead(status, { 'content-type': 'application/json', ...(status === 429 ? { 'retry-after': '1' } : {}) });
        res.end(JSON.stringify({ errors: [{ code: 'INJECTED', message: `injected ${status}` }] }));
        return;
      }
      default:
        injectBodyFault(kind, req, res).catch(() => res.socket?.destroy());
    }
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    host: `127.0.0.1:${port}`,
    port,
    setRates,
    stats: () => {
      const copy = { ...faults };
      return { requests, matched, faults: copy, injected: Object.values(copy).reduce((a, b) => a + b, 0) };
    },
    async stop() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
