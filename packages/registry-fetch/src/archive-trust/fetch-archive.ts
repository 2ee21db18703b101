// Fetching one archive candidate from a registry without trusting it: the artifact manifest
// is checked (type, subject, declared size against what the image's size allows), the first
// bytes of the blob are read by Range and must carry the archive magic, and only then is the
// blob downloaded, never past its declared size, and digest-verified.
import type { Readable } from 'node:stream';
import { ARCHIVE_MAGIC as MAGIC } from '@clip/archive-format';
import { ArchiveFormatError, type Digest, DigestMismatchError, sha256Digest } from '@clip/shared';
import type { Descriptor, RawManifest } from '../image-source.js';
import { parseArtifactManifest, type ArtifactManifest } from '../referrers.js';
import type { RegistrySource } from '../registry-source.js';
import { ARCHIVE_ARTIFACT_TYPE, ARCHIVE_LAYER_MEDIA_TYPE } from '../archive-artifact/artifact.js';
import { ArchiveUntrustedError } from './errors.js';

/** Never more than this, whatever the image (clip's table limit). */
export const MAX_ARCHIVE_BYTES = 2 * 1024 * 1024 * 1024;
/** Headroom over the image's compressed size: an archive is ~1% of it, more for tiny files. */
const ARCHIVE_SLACK_BYTES = 32 * 1024 * 1024;

/** Largest archive accepted for an image: 32 MiB + its compressed layer bytes, at most 2 GiB. */
export function archiveSizeLimit(layers: ReadonlyArray<{ size: number }>): number {
  return Math.min(MAX_ARCHIVE_BYTES, ARCHIVE_SLACK_BYTES + layers.reduce((sum, layer) => sum + layer.size, 0));
}

export interface ArchiveArtifact {
  /** The artifact manifest's descriptor (digest, size). */
  artifact: Descriptor;
  manifest: ArtifactManifest;
  /** Its archive layer. */
  blob: Descriptor;
}

/** Reads artifact manifest `artifact` and checks it is a clip archive of `manifestDigest` within `limit` bytes. */
export async function readArchiveArtifact(
  source: RegistrySource,
  artifact: Descriptor,
  manifestDigest: Digest,
  limit: number,
  fetchManifest: (digest: Digest) => Promise<RawManifest> = (digest) => source.fetchManifest(digest),
): Promise<ArchiveArtifact> {
  const what = `archive artifact ${artifact.digest} in ${source.reference}`;
  const raw = await fetchManifest(artifact.digest);
  const manifest = parseArtifactManifest(raw.bytes, what);
  if (manifest.artifactType !== ARCHIVE_ARTIFACT_TYPE)
    throw new ArchiveUntrustedError(`${what} has artifactType ${manifest.artifactType ?? '(none)'}, not ${ARCHIVE_ARTIFACT_TYPE}`);
  if (manifest.subject && manifest.subject.digest !== manifestDigest) {
    throw new ArchiveUntrustedError(`${what} refers to manifest ${manifest.subject.digest}, not ${manifestDigest}`);
  }
  const layers = manifest.layers.filter((layer) => layer.mediaType === ARCHIVE_LAYER_MEDIA_TYPE);
  if (layers.length !== 1)
    throw new ArchiveUntrustedError(`${what} has ${layers.length} layers of type ${ARCHIVE_LAYER_MEDIA_TYPE}, expected 1`);
  const blob = layers[0]!;
  if (blob.size > limit) {
    throw new ArchiveUntrustedError(
      `${what}: archive blob ${blob.digest} is ${blob.size} bytes, more than the ${limit} bytes an archive of this image can need`,
    );
  }
  return { artifact: { ...artifact, size: raw.bytes.length }, manifest, blob };
}

/**
 * A blob stream read to its end, refused (ArchiveUntrustedError) past `limit` bytes. With
 * `badMagic`, the first bytes must carry the archive magic (else that error, and no more is read).
 */
export async function readAtMost(stream: Readable, limit: number, what: string, badMagic?: () => Error): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  let checked = badMagic === undefined;
  try {
    for await (const chunk of stream) {
      total += (chunk as Buffer).length;
      if (!checked && total >= MAGIC.length) {
        const head = chunks.length === 0 ? (chunk as Buffer) : Buffer.concat([...chunks, chunk as Buffer]);
        if (!hasMagic(head)) throw badMagic!();
        checked = true;
      }
      if (total > limit) throw new ArchiveUntrustedError(`${what} is larger than ${limit} bytes; stopped downloading it`);
      chunks.push(chunk as Buffer);
    }
  } finally {
    stream.destroy();
  }
  if (!checked) throw badMagic!();
  return Buffer.concat(chunks, total);
}

/** Archives up to this size (declared) are checked on the first bytes of the download itself, not by a separate Range read. */
export const MAGIC_IN_STREAM_BYTES = 4 * 1024 * 1024;

/**
 * Downloads archive blob `digest` (declared `size`, or unknown for a pinned digest) after
 * checking its magic: on the first bytes of the download when the declared size is at most
 * MAGIC_IN_STREAM_BYTES (one round trip less before mounting), else with a Range read first.
 * At most `limit` bytes are ever accepted.
 */
export async function downloadArchiveBlob(
  source: RegistrySource,
  digest: Digest,
  size: number | undefined,
  limit: number,
): Promise<Buffer> {
  const what = `archive blob ${digest} in ${source.reference}`;
  const notAnArchive = () => new ArchiveFormatError(`${what} is not a clip archive (bad magic); not downloading it`);
  const inStream = size !== undefined && size <= MAGIC_IN_STREAM_BYTES;
  if (!inStream) {
    const head = await source.readBlobRange(digest, 0, Math.min(MAGIC.length, size ?? MAGIC.length)).catch((error: unknown) => {
      // A blob shorter than the magic answers 416 / a short range: it is not an archive.
      if (error instanceof Error && 'code' in error && error.code === 'CLIP_E_USAGE') return Buffer.alloc(0);
      throw error;
    });
    if (!hasMagic(head)) throw notAnArchive();
  }
  const bytes = await readAtMost(await source.openBlob(digest), Math.min(size ?? limit, limit), what, inStream ? notAnArchive : undefined);
  const actual = sha256Digest(bytes);
  if (actual !== digest) throw new DigestMismatchError(what, digest, actual);
  if (size !== undefined && bytes.length !== size)
    throw new ArchiveFormatError(`${what} has ${bytes.length} bytes, its descriptor says ${size}`);
  return bytes;
}

function hasMagic(head: Uint8Array): boolean {
  return head.length >= MAGIC.length && MAGIC.every((byte, i) => head[i] === byte);
}
