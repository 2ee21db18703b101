// A pass-through stream that hashes what flows through and fails at the end when the
// content is not the digest (or size) it was addressed by.
import { createHash } from 'node:crypto';
import { Transform, type Readable } from 'node:stream';
import { type Digest, DigestMismatchError } from '@clip/shared';

export function verifyingStream(what: string, digest: Digest, expectedSize?: number): Transform {
  const hash = createHash('sha256');
  let size = 0;
  return new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      hash.update(chunk);
      size += chunk.length;
      callback(null, chunk);
    },
    flush(callback) {
      const actual = `sha256:${hash.digest('hex')}`;
      if (actual !== digest) return callback(new DigestMismatchError(what, digest, actual));
      if (expectedSize !== undefined && size !== expectedSize) {
        return callback(new DigestMismatchError(`${what} (size ${size}, expected ${expectedSize})`, digest, actual));
      }
      callback();
    },
  });
}

/** Pipes `source` through a verifier; errors on either side reach the returned stream. */
export function verified(source: Readable, what: string, digest: Digest, expectedSize?: number): Readable {
  const check = verifyingStream(what, digest, expectedSize);
  source.on('error', (error) => check.destroy(error));
  check.on('close', () => {
    if (!source.destroyed) source.destroy();
  });
  return source.pipe(check);
}

/** Reads a whole stream into one buffer. */
export async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}
