// Optional second binding for operators who deploy by image manifest digest: an ed25519
// signature over (archive digest, image manifest digest, storage registry/repository), kept as
// annotations on the archive's artifact manifest. Workers given --verify-key accept only
// archives signed by one of their keys. Keys are PEM files (PKCS#8 private, SPKI public), as
// `openssl genpkey -algorithm ed25519` and `openssl pkey -pubout` write them.
import { createHash, createPrivateKey, createPublicKey, sign, verify, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { type Digest, UsageError } from '@clip/shared';
import type { RepositoryName } from './verify-archive-binding.js';

export const SIGNATURE_ANNOTATION = 'dev.clip.archive.signature';
export const SIGNATURE_KEY_ANNOTATION = 'dev.clip.archive.signature.key';
const PAYLOAD_TYPE = 'dev.clip.archive-binding.v1';

export interface SignedBinding {
  archiveDigest: Digest;
  manifestDigest: Digest;
  storage: RepositoryName;
}

/** The exact bytes signed: one JSON object with fields in a fixed order. */
export function bindingPayload(binding: SignedBinding): Buffer {
  return Buffer.from(
    JSON.stringify({
      type: PAYLOAD_TYPE,
      archive: binding.archiveDigest,
      manifest: binding.manifestDigest,
      storage: storageName(binding.storage),
    }),
  );
}

/** The storage repository as signed payloads name it (registry host case-folded). */
export function storageName(storage: RepositoryName): string {
  return `${storage.registry.toLowerCase()}/${storage.repository}`;
}

/** The fingerprint of the first of `keys` whose signature (base64) of `payload` verifies. */
export function signerOf(payload: Buffer, signature: string, keys: readonly KeyObject[]): string | undefined {
  const bytes = Buffer.from(signature, 'base64');
  const key = keys.find((candidate) => verify(null, payload, candidate, bytes));
  return key ? keyFingerprint(key) : undefined;
}

/** `sha256:<hex>` of the public key's SPKI DER: names the key in annotations and logs. */
export function keyFingerprint(key: KeyObject): string {
  const publicKey = key.type === 'private' ? createPublicKey(key) : key;
  return `sha256:${createHash('sha256')
    .update(publicKey.export({ type: 'spki', format: 'der' }))
    .digest('hex')}`;
}

function checkEd25519(key: KeyObject, path: string): KeyObject {
  if (key.asymmetricKeyType !== 'ed25519')
    throw new UsageError(`key ${path} is ${key.asymmetricKeyType ?? 'not an asymmetric key'}, expected ed25519`);
  return key;
}

async function readPem(path: string, flag: string): Promise<Buffer> {
  return readFile(path).catch((error: NodeJS.ErrnoException) => {
    throw new UsageError(`cannot read ${flag} ${path}: ${error.code ?? error.message}`);
  });
}

export async function loadSigningKey(path: string): Promise<KeyObject> {
  const pem = await readPem(path, '--sign-key');
  try {
    return checkEd25519(createPrivateKey(pem), path);
  } catch (error) {
    if (error instanceof UsageError) throw error;
    throw new UsageError(`--sign-key ${path} is not a PEM private key (expected ed25519, PKCS#8)`);
  }
}

export async function loadVerifyKey(path: string): Promise<KeyObject> {
  const pem = await readPem(path, '--verify-key');
  try {
    return checkEd25519(createPublicKey(pem), path);
  } catch (error) {
    if (error instanceof UsageError) throw error;
    throw new UsageError(`--verify-key ${path} is not a PEM public key (expected ed25519, SPKI)`);
  }
}

/** Annotations to put on the artifact manifest. */
export function signBinding(binding: SignedBinding, key: KeyObject): Record<string, string> {
  return {
    [SIGNATURE_ANNOTATION]: sign(null, bindingPayload(binding), key).toString('base64'),
    [SIGNATURE_KEY_ANNOTATION]: keyFingerprint(key),
  };
}

/**
 * The fingerprint of the key that signed `binding` (from the artifact's annotations), or a
 * reason it is not signed by any of `keys`.
 */
export function checkSignature(
  annotations: Record<string, string> | undefined,
  binding: SignedBinding,
  keys: readonly KeyObject[],
): { ok: true; key: string } | { ok: false; reason: string } {
  const signature = annotations?.[SIGNATURE_ANNOTATION];
  if (typeof signature !== 'string') return { ok: false, reason: 'not signed' };
  const key = signerOf(bindingPayload(binding), signature, keys);
  if (key) return { ok: true, key };
  return {
    ok: false,
    reason: `signature does not verify with ${keys.length === 1 ? 'the --verify-key' : `any of the ${keys.length} --verify-key keys`} (signed by ${annotations?.[SIGNATURE_KEY_ANNOTATION] ?? 'an unnamed key'})`,
  };
}
