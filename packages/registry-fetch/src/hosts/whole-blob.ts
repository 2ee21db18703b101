// A whole blob read across a registry's hosts (mirrors, then the server). A host whose stream
// breaks mid-body (connection reset, body stall, short body) hands the read to the next host,
// which resumes with `Range: bytes=<received>-`; a host that ignores the Range (200) is read
// from the start and the bytes already delivered are skipped. The last host gets its client's
// retries, each resuming the same way. The digest (and size) of everything delivered is
// verified at the end, whichever hosts it came from.
import { Readable } from 'node:stream';
import { type Digest, LayerNotFoundError, type Logger, RegistryError } from '@clip/shared';
import { repositoryScope } from '../auth.js';
import type { RegistryResponse } from '../registry-client.js';
import { backoffDelay, sleep } from '../retry.js';
import { verified } from '../verify-stream.js';
import type { RegistryHost } from './host-set.js';
import { abandon, isStall } from './mirror-range.js';

const CONTENT_RANGE_START_RE = /^bytes (\d+)-\d+\/(\d+|\*)$/;

export interface WholeBlobOptions {
  signal?: AbortSignal;
  /** For messages: the image reference. */
  reference: string;
  logger: Logger;
  /** Body bytes received from any host (for the source's stats). */
  onBytes?: (bytes: number) => void;
  /** Resumes on the last host after a break; default its client's retry count. */
  lastHostRetries?: number;
}

interface Opened {
  response: RegistryResponse;
  /** Leading bytes of the body already delivered (the host ignored the Range). */
  skip: number;
}

async function openAt(host: RegistryHost, digest: Digest, from: number, signal: AbortSignal | undefined): Promise<Opened> {
  const client = host.source.client;
  const what = from > 0 ? `GET blob ${digest} (resume at byte ${from})` : `GET blob ${digest}`;
  const response = await client.send({
    method: 'GET',
    path: client.apiPath('blobs', digest),
    headers: from > 0 ? { range: `bytes=${from}-` } : {},
    scopes: [repositoryScope(host.source.ref.repository, 'pull')],
    what,
    range: from > 0,
    followRedirects: true,
    ...(signal ? { signal } : {}),
  });
  if (response.status === 404) {
    await client.discard(response);
    throw new LayerNotFoundError(digest, host.isMirror ? `${host.stats.host} (mirror of ${host.source.reference})` : host.source.reference);
  }
  if (response.status === 200) return { response, skip: from };
  if (from > 0 && response.status === 206) {
    const contentRange = response.headers['content-range'];
    const match = typeof contentRange === 'string' ? CONTENT_RANGE_START_RE.exec(contentRange) : null;
    if (match && Number(match[1]) === from) return { response, skip: 0 };
    abandon(response);
    throw new RegistryError(`${client.describe()}: ${what}: 206 with Content-Range ${JSON.stringify(contentRange ?? null)}`);
  }
  throw await client.unexpected(response, what);
}

/** Opens `digest` on the first host that answers, and keeps it flowing across hosts as above. */
export async function openBlobAcrossHosts(hosts: RegistryHost[], digest: Digest, options: WholeBlobOptions): Promise<Readable> {
  const { signal, logger } = options;
  if (hosts.length === 0) throw new RegistryError(`${options.reference}: no host may be used to pull`);
  let index = 0;
  let lastRetries = 0;
  let received = 0;
  let size: number | undefined;

  /** The next usable host from `index` on (the current one again on the last host, within its retries). */
  const open = async (): Promise<Opened> => {
    let lastError: unknown;
    for (;;) {
      const host = hosts[index]!;
      try {
        return await openAt(host, digest, received, signal);
      } catch (error) {
        if (signal?.aborted) throw signal.reason ?? error;
        lastError = error;
        // The client already retried what it could before the headers: only move on.
        if (!passOn(host, error, false)) throw lastError;
      }
    }
  };

  /** After a failure on the current host: move on (true) or give up (false). */
  const passOn = (host: RegistryHost, error: unknown, resumable: boolean): boolean => {
    const notFound = error instanceof LayerNotFoundError;
    if (notFound) host.stats.notFound++;
    else if (isStall(error)) host.stats.stalls++;
    else host.stats.errors++;
    if (index < hosts.length - 1) {
      host.stats.fallbacks++;
      // A mirror without this blob is not down (range reads treat a 404 the same way).
      if (host.isMirror && !notFound) host.markDown();
      logger.debug('registry host failed on a whole blob; trying the next', {
        host: host.stats.host,
        digest,
        at: received,
        error: (error as Error).message,
      });
      index++;
      return true;
    }
    const retries = options.lastHostRetries ?? host.source.client.retryPolicy.retries;
    return resumable && lastRetries++ < retries;
  };

  const first = await open();
  const length = first.response.headers['content-length'];
  if (first.response.status === 200 && typeof length === 'string') size = Number(length);

  async function* chunks(): AsyncGenerator<Buffer> {
    let current: Opened | undefined = first;
    for (;;) {
      let opening = false;
      try {
        if (!current) {
          if (index === hosts.length - 1 && lastRetries > 0) {
            await sleep(backoffDelay(hosts[index]!.source.client.retryPolicy, lastRetries - 1), signal);
          }
          opening = true;
          current = await open();
          opening = false;
        }
        let skip = current.skip;
        for await (const chunk of current.response.body) {
          let buffer = chunk as Buffer;
          options.onBytes?.(buffer.length);
          if (skip > 0) {
            const dropped = Math.min(skip, buffer.length);
            skip -= dropped;
            buffer = buffer.subarray(dropped);
            if (buffer.length === 0) continue;
          }
          received += buffer.length;
          yield buffer;
        }
        if (size !== undefined && received < size) {
          throw new RegistryError(`${hosts[index]!.stats.host}: GET blob ${digest}: body ended at byte ${received} of ${size}`);
        }
        return;
      } catch (error) {
        // open() has already tried (and counted) every host left.
        if (opening) throw error;
        if (current) abandon(current.response);
        current = undefined;
        if (signal?.aborted) throw signal.reason ?? error;
        // Any break mid-body (reset, stall, short body) is resumed by the next host or a retry.
        const host = hosts[index]!;
        if (!passOn(host, error, true)) throw host.source.client.mapError(error, `GET blob ${digest} at byte ${received}`);
      }
    }
  }

  return verified(Readable.from(chunks(), { objectMode: false }), `blob ${digest} of ${options.reference}`, digest, size);
}
