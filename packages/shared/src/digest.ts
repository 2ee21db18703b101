import { createHash } from 'node:crypto';
import { DigestMismatchError } from './errors.js';

/** An OCI content digest, `sha256:<64 hex>`. */
export type Digest = `sha256:${string}`;

const DIGEST_RE = /^sha256:[a-f0-9]{64}$/;

export function isDigest(value: string): value is Digest {
  return DIGEST_RE.test(value);
}

export function sha256Digest(data: Uint8Array | string): Digest {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

export function verifyDigest(what: string, data: Uint8Array, expected: Digest): void {
  const actual = sha256Digest(data);
  if (actual !== expected) throw new DigestMismatchError(what, expected, actual);
}
