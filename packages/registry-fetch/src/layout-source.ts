// ImageSource over a local OCI image layout: `oci:<dir>` (a directory) and
// `oci-archive:<file.tar>` (the same layout inside a tar, read by offset, never extracted).
import type { Readable } from 'node:stream';
import {
  type Digest,
  formatImageReference,
  LayerNotFoundError,
  ManifestNotFoundError,
  type OciArchiveReference,
  type OciLayoutReference,
  verifyDigest,
} from '@clip/shared';
import type { Descriptor, ImageSource, RangeOptions, RawManifest, ResolvedImage, ResolveOptions, SourceStats } from './image-source.js';
import { DirectoryStore, type LayoutStore } from './layout-store.js';
import { detectManifestMediaType } from './media-types.js';
import { checkRange } from './range.js';
import { parseIndexEntries, resolveImage } from './resolve.js';
import { StatsCounter } from './stats.js';
import { TarStore } from './tar-store.js';
import { verified } from './verify-stream.js';

export const REF_NAME_ANNOTATION = 'org.opencontainers.image.ref.name';

function blobPath(digest: Digest): string {
  const [algorithm, hex] = digest.split(':');
  return `blobs/${algorithm}/${hex}`;
}

/** The tag an index.json entry carries; some tools write a full reference (`repo:tag`). */
function entryTag(entry: Descriptor): string | undefined {
  return entry.annotations?.[REF_NAME_ANNOTATION];
}

function tagMatches(entry: Descriptor, tag: string): boolean {
  const name = entryTag(entry);
  return name === tag || (name?.endsWith(`:${tag}`) === true && !name.slice(0, -tag.length - 1).includes('@'));
}

abstract class LocalLayoutSource implements ImageSource {
  abstract readonly kind: 'oci-layout' | 'oci-archive';
  readonly reference: string;
  protected readonly counter = new StatsCounter(false);

  protected constructor(
    protected readonly store: LayoutStore,
    reference: string,
    private readonly tag: string | undefined,
    private readonly digest: Digest | undefined,
    private readonly location: string,
  ) {
    this.reference = reference;
  }

  private async readIndexJson(): Promise<Descriptor[]> {
    this.counter.request();
    const bytes = await this.store.readFile('index.json');
    if (!bytes) throw new ManifestNotFoundError(this.reference, `${this.location} has no index.json; is it an OCI layout?`);
    this.counter.received(bytes.length);
    return parseIndexEntries(bytes, `index.json of ${this.location}`);
  }

  /** The index.json entry the reference names: by digest, by tag, or the default one. */
  private async topDescriptor(): Promise<{ digest: Digest; mediaType?: string }> {
    const entries = await this.readIndexJson();
    const tags = entries.map(entryTag).filter((tag): tag is string => tag !== undefined);
    const tagList = tags.length > 0 ? tags.join(', ') : '(no tagged manifests)';
    if (this.digest) {
      const entry = entries.find((candidate) => candidate.digest === this.digest);
      return entry ?? { digest: this.digest };
    }
    if (this.tag !== undefined) {
      const entry = entries.find((candidate) => tagMatches(candidate, this.tag as string));
      if (!entry) throw new ManifestNotFoundError(this.reference, `no manifest tagged ${this.tag}; tags: ${tagList}`);
      return entry;
    }
    if (entries.length === 1 && entries[0]) return entries[0];
    const latest = entries.find((candidate) => tagMatches(candidate, 'latest'));
    if (latest) return latest;
    throw new ManifestNotFoundError(
      this.reference,
      entries.length === 0 ? 'index.json lists no manifests' : `${entries.length} manifests and none tagged latest; pick a tag: ${tagList}`,
    );
  }

  async topManifest(): Promise<RawManifest> {
    const top = await this.topDescriptor();
    return this.fetchManifest(top.digest, top.mediaType);
  }

  async resolve(options?: ResolveOptions): Promise<ResolvedImage> {
    const manifest = await this.topManifest();
    return resolveImage(
      this.reference,
      manifest,
      {
        fetchManifest: (digest) => this.fetchManifest(digest),
        readSmallBlob: (descriptor: Descriptor) => this.readWholeBlob(descriptor.digest),
      },
      options,
    );
  }

  private async readWholeBlob(digest: Digest): Promise<Buffer> {
    this.counter.request();
    const bytes = await this.store.readFile(blobPath(digest));
    if (!bytes) throw new LayerNotFoundError(digest, this.reference);
    this.counter.received(bytes.length);
    return bytes;
  }

  async fetchManifest(digest: Digest, declaredMediaType?: string): Promise<RawManifest> {
    const bytes = await this.readWholeBlob(digest);
    verifyDigest(`manifest in ${this.reference}`, bytes, digest);
    return { digest, bytes, mediaType: detectManifestMediaType(bytes, declaredMediaType, `manifest ${digest} in ${this.reference}`) };
  }

  private async blobSize(digest: Digest): Promise<number> {
    const size = await this.store.size(blobPath(digest));
    if (size === undefined) throw new LayerNotFoundError(digest, this.reference);
    return size;
  }

  async openBlob(digest: Digest, _options?: RangeOptions): Promise<Readable> {
    const size = await this.blobSize(digest);
    this.counter.request();
    const stream = this.store.createStream(blobPath(digest));
    stream.on('data', (chunk: Buffer) => this.counter.received(chunk.length));
    return verified(stream, `blob in ${this.reference}`, digest, size);
  }

  async readBlobRange(digest: Digest, start: number, end: number, _options?: RangeOptions): Promise<Buffer> {
    const size = await this.blobSize(digest);
    checkRange(`blob ${digest} in ${this.reference}`, start, end, size);
    if (start === end) return Buffer.alloc(0);
    this.counter.request();
    this.counter.range();
    const bytes = await this.store.readRange(blobPath(digest), start, end);
    this.counter.received(bytes.length);
    return bytes;
  }

  async hasBlob(digest: Digest): Promise<boolean> {
    return (await this.store.size(blobPath(digest))) !== undefined;
  }

  stats(): SourceStats {
    return this.counter.snapshot();
  }

  async close(): Promise<void> {
    await this.store.close();
  }
}

/** `oci:<dir>[:<tag>|@<digest>]`: an OCI image layout directory. */
export class LayoutSource extends LocalLayoutSource {
  readonly kind = 'oci-layout' as const;
  constructor(ref: OciLayoutReference) {
    super(new DirectoryStore(ref.dir), formatImageReference(ref), ref.tag, ref.digest, `layout directory ${ref.dir}`);
  }
}

/** `oci-archive:<file.tar>[:<tag>]`: a tar of an OCI image layout. */
export class OciArchiveSource extends LocalLayoutSource {
  readonly kind = 'oci-archive' as const;
  constructor(ref: OciArchiveReference) {
    super(new TarStore(ref.file), formatImageReference(ref), ref.tag, undefined, `OCI archive ${ref.file}`);
  }
}
