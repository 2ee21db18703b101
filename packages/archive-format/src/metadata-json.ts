// The METADATA section: the archive's metadata as canonical JSON (equal metadata, equal bytes)
// and its checked decoding.
import { ArchiveFormatError, isDigest } from '@clip/shared';
import { corrupt } from './format-errors.js';
import type { ArchiveMetadata } from './model.js';

const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder('utf-8', { fatal: true });

export function encodeMetadata(metadata: ArchiveMetadata): Uint8Array {
  return textEncoder.encode(canonicalJson(metadata));
}

/** JSON with object keys sorted, so equal metadata always encodes to equal bytes. */
function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map((item) => canonicalJson(item ?? null)).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const keys = Object.keys(value)
      .filter((key) => (value as Record<string, unknown>)[key] !== undefined)
      .sort();
    return `{${keys.map((key) => `${JSON.stringify(key)}:${canonicalJson((value as Record<string, unknown>)[key])}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

export function decodeMetadata(bytes: Uint8Array): ArchiveMetadata {
  let value: unknown;
  try {
    value = JSON.parse(textDecoder.decode(bytes));
  } catch (error) {
    throw new ArchiveFormatError('corrupt archive: metadata is not valid UTF-8 JSON', { cause: error });
  }
  const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);
  if (!isObject(value)) corrupt('metadata is not an object');
  if (typeof value.sourceRef !== 'string') corrupt('metadata.sourceRef is not a string');
  if (typeof value.createdBy !== 'string') corrupt('metadata.createdBy is not a string');
  if (!isObject(value.imageConfig)) corrupt('metadata.imageConfig is not an object');
  if (value.storage !== undefined) {
    const storage = value.storage;
    if (
      !isObject(storage) ||
      typeof storage.registry !== 'string' ||
      typeof storage.repository !== 'string' ||
      typeof storage.manifestDigest !== 'string' ||
      !isDigest(storage.manifestDigest) ||
      (storage.tag !== undefined && typeof storage.tag !== 'string')
    ) {
      corrupt('metadata.storage is malformed');
    }
  }
  return value as unknown as ArchiveMetadata;
}
