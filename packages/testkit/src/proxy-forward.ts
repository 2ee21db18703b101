// The fault proxy's traffic: forwarding a request to the registry (request body optionally
// throttled, response optionally cut after some bytes) and the faults that need the answer's
// body in hand (fault-proxy.ts decides which fault a request gets).
import { request as httpRequest, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';

export interface Upstream {
  hostname: string;
  port: number;
}

/** What the proxy did with one request (FaultProxy.log). */
export interface ProxiedRequest {
  method: string;
  url: string;
  range: string | undefined;
  authorization: boolean;
  /** The injected fault's kind (a scripted `status` fault logs 'status'), or 'none'. */
  fault: string;
  /** Request body bytes forwarded so far. */
  bodyBytes: number;
  /** Response body bytes forwarded to the client so far (forwarded answers only; injected ones count 0). */
  responseBytes: number;
  /** Status answered (forwarded or injected), once known. */
  status?: number;
}

export interface ForwardOptions {
  /** The Range header sent upstream (undefined: none). */
  range: string | undefined;
  /** Close the connection after this many response body bytes. */
  cutAfter?: number;
  /** Request body rate in bytes per second; undefined = unthrottled. */
  bytesPerSecond: () => number | undefined;
}

const PIECE = 16 * 1024;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const RANGE_RE = /^bytes=(\d+)-(\d+)$/;
const CONTENT_RANGE_RE = /^bytes (\d+)-(\d+)\/(\d+|\*)$/;

/**
 * The client's headers with `range`. Host stays the proxy's, so the registry's upload
 * Locations point back through the proxy.
 */
function upstreamHeaders(req: IncomingMessage, range: string | undefined): IncomingHttpHeaders {
  const headers = { ...req.headers };
  if (range === undefined) delete headers['range'];
  else headers['range'] = range;
  return headers;
}

/** Forwards as a stream. */
export function forward(
  upstream: Upstream,
  req: IncomingMessage,
  res: ServerResponse,
  entry: ProxiedRequest,
  options: ForwardOptions,
): void {
  const out = httpRequest(
    { hostname: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: upstreamHeaders(req, options.range) },
    (answer) => {
      entry.status = answer.statusCode ?? 502;
      res.writeHead(entry.status, answer.headers);
      answer.on('error', () => res.socket?.destroy());
      const cutAfter = options.cutAfter;
      if (cutAfter === undefined) {
        answer.on('data', (chunk: Buffer) => {
          entry.responseBytes += chunk.length;
        });
        return void answer.pipe(res);
      }
      let sent = 0;
      answer.on('data', (chunk: Buffer) => {
        if (sent + chunk.length >= cutAfter) {
          const part = chunk.subarray(0, Math.max(0, cutAfter - sent));
          entry.responseBytes += part.length;
          res.write(part);
          answer.destroy();
          // Let the partial body go out, then cut the connection.
          setTimeout(() => res.socket?.destroy(), 20);
          sent = cutAfter;
          return;
        }
        sent += chunk.length;
        entry.responseBytes += chunk.length;
        res.write(chunk);
      });
      answer.on('end', () => res.end());
    },
  );
  out.on('error', () => res.socket?.destroy());
  sendBody(req, res, out, entry, options.bytesPerSecond);
}

/**
 * The request body is read eagerly and sent on at the throttled rate, so a client that goes
 * away is noticed at once and the rest of its upload is dropped, as on a real slow link.
 */
function sendBody(
  req: IncomingMessage,
  res: ServerResponse,
  out: ReturnType<typeof httpRequest>,
  entry: ProxiedRequest,
  bytesPerSecond: () => number | undefined,
): void {
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
    out.destroy();
    notify();
  });
  void (async () => {
    for (;;) {
      if (gone) return;
      const chunk = queue.shift();
      if (!chunk) {
        if (ended) return void out.end();
        await new Promise<void>((resolve) => (wake = resolve));
        continue;
      }
      for (let offset = 0; offset < chunk.length && !gone; offset += PIECE) {
        const piece = chunk.subarray(offset, offset + PIECE);
        if (!out.write(piece)) await new Promise((resolve) => out.once('drain', resolve));
        entry.bodyBytes += piece.length;
        const rate = bytesPerSecond();
        if (rate !== undefined) await sleep((piece.length / rate) * 1000);
      }
    }
  })();
}

interface UpstreamAnswer {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

/** Fetches a whole upstream answer into memory (ranges are small). */
function fetchUpstream(upstream: Upstream, req: IncomingMessage, range: string | undefined): Promise<UpstreamAnswer> {
  return new Promise((resolve, reject) => {
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
}

function respond(res: ServerResponse, status: number, headers: IncomingHttpHeaders, body: Buffer): void {
  const h: IncomingHttpHeaders = { ...headers, 'content-length': String(body.length) };
  delete h['transfer-encoding'];
  res.writeHead(status, h);
  res.end(body);
}

export type BodyFaultKind = 'reset-mid-body' | 'stall-mid-body' | 'truncate' | 'flip' | 'wrong-content-range' | 'shifted-body';

/** Faults on a ranged blob answer, drawn with `random`. */
export async function injectBodyFault(
  upstream: Upstream,
  kind: BodyFaultKind,
  req: IncomingMessage,
  res: ServerResponse,
  random: () => number,
): Promise<void> {
  const range = req.headers['range'] as string;
  const asked = RANGE_RE.exec(range);
  const answer = await fetchUpstream(upstream, req, range);
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
      const shift =
        start > 0
          ? -1 - Math.floor(random() * Math.min(start, 4096))
          : Math.min(1 + Math.floor(random() * 4096), Math.max(0, size - end - 1));
      if (shift === 0) return respond(res, 206, answer.headers, Buffer.alloc(0));
      const other = await fetchUpstream(upstream, req, `bytes=${start + shift}-${start + shift + length - 1}`);
      const headers = kind === 'shifted-body' ? answer.headers : other.headers;
      return respond(res, other.status, headers, other.body);
    }
  }
}

/** An injected registry error answer. */
export function answerStatus(req: IncomingMessage, res: ServerResponse, status: number, headers: Record<string, string> = {}): void {
  req.resume();
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify({ errors: [{ code: 'INJECTED', message: `injected ${status}` }] }));
}
