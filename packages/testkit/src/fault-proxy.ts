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
// resets to take the "registry" down, then none to bring it back). Tests that need exact
// faults script them instead (`script`: the next matching requests get these faults, in
// order; `failWhen`: every matching request gets an error status), can throttle request
// bodies (a slow uplink) and read a log of every request.
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { answerStatus, type BodyFaultKind, forward, injectBodyFault, type ProxiedRequest, type Upstream } from './proxy-forward.js';

export type { ProxiedRequest } from './proxy-forward.js';

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

/** An exact fault for `script`. */
export type ScriptedFault =
  | { kind: 'reset' }
  | { kind: 'reset-mid-body'; afterBytes: number }
  | { kind: 'status'; status: number; headers?: Record<string, string> }
  | { kind: 'ignore-range' }
  | { kind: 'stall' };

export type RequestMatch = (method: string, url: string) => boolean;

export interface FaultProxyOptions {
  upstream: Upstream;
  /** Probability of each fault per matching request; their sum must be at most 1. */
  rates?: FaultRates;
  seed?: number;
  /** Which requests may get a random fault; default blob GETs with a Range header. */
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
  /** Every request, in arrival order (tests may truncate it). */
  log: ProxiedRequest[];
  setRates(rates: FaultRates): void;
  /** The next requests that `match` (default: all) get `faults`, in order; replaces an earlier script. */
  script(faults: ScriptedFault[], match?: RequestMatch): void;
  /** Answer every request that matches with `status` (default 500); undefined stops. */
  failWhen(match: RequestMatch | undefined, status?: number): void;
  /** Request body rate in bytes per second per request; undefined = unthrottled. */
  throttle(bytesPerSecond: number | undefined): void;
  /** Random faults only (scripted ones are in the log). */
  stats(): FaultProxyStats;
  stop(): Promise<void>;
}

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

/** A random fault as the scripted fault it is, when there is one (the others need the body in hand). */
function asScripted(kind: FaultKind): ScriptedFault | undefined {
  switch (kind) {
    case 'reset':
    case 'ignore-range':
    case 'stall':
      return { kind };
    case 'status-500':
    case 'status-503':
    case 'status-429': {
      const status = Number(kind.slice(-3));
      return { kind: 'status', status, headers: status === 429 ? { 'retry-after': '1' } : {} };
    }
    default:
      return undefined;
  }
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
  const log: ProxiedRequest[] = [];
  let scripted: { faults: ScriptedFault[]; match: RequestMatch } = { faults: [], match: () => true };
  let failing: { match: RequestMatch; status: number } | undefined;
  let bytesPerSecond: number | undefined;
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

  /** The scripted fault, else a random one for requests that `match`. */
  const chooseFault = (req: IncomingMessage, entry: ProxiedRequest): ScriptedFault | FaultKind | undefined => {
    if (failing?.match(entry.method, entry.url)) return { kind: 'status', status: failing.status };
    if (scripted.faults.length > 0 && scripted.match(entry.method, entry.url)) return scripted.faults.shift();
    if (!match(req)) return undefined;
    matched++;
    const kind = draw();
    if (kind) faults[kind]++;
    return kind;
  };

  const server = createServer((req, res) => {
    requests++;
    const entry: ProxiedRequest = {
      method: req.method ?? 'GET',
      url: req.url ?? '/',
      range: req.headers['range'],
      authorization: req.headers['authorization'] !== undefined,
      fault: 'none',
      bodyBytes: 0,
      responseBytes: 0,
    };
    log.push(entry);
    const chosen = chooseFault(req, entry);
    if (chosen !== undefined) entry.fault = typeof chosen === 'string' ? chosen : chosen.kind;
    const fault = typeof chosen === 'string' ? (asScripted(chosen) ?? chosen) : chosen;
    const forwardOptions = { range: req.headers['range'], bytesPerSecond: () => bytesPerSecond };
    if (typeof fault === 'string') {
      injectBodyFault(upstream, fault as BodyFaultKind, req, res, random).catch(() => res.socket?.destroy());
      return;
    }
    switch (fault?.kind) {
      case undefined:
        return forward(upstream, req, res, entry, forwardOptions);
      case 'ignore-range':
        return forward(upstream, req, res, entry, { ...forwardOptions, range: undefined });
      case 'reset-mid-body':
        return forward(upstream, req, res, entry, { ...forwardOptions, cutAfter: fault.afterBytes });
      case 'reset':
        return req.socket.destroy();
      case 'stall':
        return; // never answer; the client times out (or stop() closes the socket)
      case 'status':
        entry.status = fault.status;
        return answerStatus(req, res, fault.status, fault.headers);
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
    log,
    setRates,
    script(next, scriptMatch) {
      scripted = { faults: [...next], match: scriptMatch ?? (() => true) };
    },
    failWhen(failMatch, status = 500) {
      failing = failMatch ? { match: failMatch, status } : undefined;
    },
    throttle(rate) {
      bytesPerSecond = rate;
    },
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
