// The checks every archive passes before it is served for a registry image, whatever way it
// was found (bound index, pinned digest, signed or trusted referrer, cache): it indexes layers
// in a registry (never a data-carrying archive), those layers live in the repository it was
// found through (or a configured mirror of it), it indexes this very manifest, and its layer
// table matches the manifest's layers and the config's diff_ids one for one.
// What these checks cannot see is the file table itself (which path maps to which bytes):
// that is what the binding (bound index, pin, signature) is for; see docs/security.md.
import type { ClipArchive } from '@clip/archive-format';
import type { Digest } from '@clip/shared';
import { ArchiveUntrustedError } from './errors.js';

export interface RepositoryName {
  registry: string;
  repository: string;
}

export interface BindingExpectation {
  /** The image as resolved from the registry: manifest digest, layers with diffIDs. */
  image: {
    manifestDigest: Digest;
    layers: ReadonlyArray<{ digest: Digest; diffId: Digest; size: number }>;
  };
  /** The registry and repository the archive was found through. */
  foundThrough: RepositoryName;
  /** Repositories the operator declared the reference a mirror of (their storage is accepted too). */
  mirrorOf?: readonly RepositoryName[];
}

export const formatRepository = (name: RepositoryName): string => `${name.registry}/${name.repository}`;

function sameRepository(a: RepositoryName, b: RepositoryName): boolean {
  return a.registry.toLowerCase() === b.registry.toLowerCase() && a.repository === b.repository;
}

/**
 * Throws ArchiveUntrustedError naming the first thing that differs; `what` names the
 * archive (artifact or blob digest, cache path) in the message.
 */
export function verifyArchiveBinding(archive: ClipArchive, expected: BindingExpectation, what: string): void {
  const through = formatRepository(expected.foundThrough);
  const storage = archive.metadata.storage;
  if (archive.dataSection || !storage || archive.layers.some((layer) => layer.source === 'archive')) {
    throw new ArchiveUntrustedError(
      `${what} is a data-carrying archive (it holds file contents itself): never accepted for the registry image ${through}@${expected.image.manifestDigest}`,
    );
  }
  const accepted = [expected.foundThrough, ...(expected.mirrorOf ?? [])];
  if (!accepted.some((name) => sameRepository(name, storage))) {
    throw new ArchiveUntrustedError(
      `${what} stores its layers in ${formatRepository(storage)}, but it was found through ${through}` +
        (expected.mirrorOf?.length ? ` (mirror of ${expected.mirrorOf.map(formatRepository).join(', ')})` : '') +
        '; refusing to read layers from elsewhere (pass --mirror-of <registry/repo> if the reference is a mirror of it)',
    );
  }
  if (storage.manifestDigest !== expected.image.manifestDigest) {
    throw new ArchiveUntrustedError(
      `${what} indexes manifest ${storage.manifestDigest}, not the image's ${expected.image.manifestDigest} (${through})`,
    );
  }
  const want = expected.image.layers;
  if (archive.layers.length !== want.length) {
    throw new ArchiveUntrustedError(
      `${what} lists ${archive.layers.length} layers, manifest ${expected.image.manifestDigest} has ${want.length}`,
    );
  }
  archive.layers.forEach((layer, i) => {
    const image = want[i]!;
    const differs = (field: string, got: string | number, expect: string | number) =>
      new ArchiveUntrustedError(
        `${what}: layer ${i} ${field} is ${got}, manifest ${expected.image.manifestDigest} of ${through} says ${expect}`,
      );
    if (layer.digest !== image.digest) throw differs('digest', layer.digest, image.digest);
    if (layer.diffId !== image.diffId) throw differs('diffID', layer.diffId, image.diffId);
    if (layer.compressedSize !== image.size) throw differs('size', layer.compressedSize, image.size);
  });
}
