// One interface over every place an image can come from (modelled on go-containerregistry's
// Image/Layer): an OCI layout directory, an oci-archive tarball, or a registry. The indexer
// reads through it, the mounter reads byte ranges of layers through it, push copies between two.
import type { Readable } from 'node:stream';
import type { LayerCompression } from '@clip/archive-format';
import type { Digest, Platform } from '@clip/shared';

export type { LayerCompression, Platform };

/** A content descriptor as in the OCI image spec. */
export interface Descriptor {
  mediaType: string;
  digest: Digest;
  size: number;
  annotations?: Record<string, string>;
  platform?: Platform;
  artifactType?: string;
}

export interface LayerDescriptor extends Descriptor {
  /** The uncompressed digest from the image config's rootfs.diff_ids. */
  diffId: Digest;
  compression: LayerCompression;
}

/** The parts of the image config a runtime needs (OCI `config` object). */
export interface ImageRuntimeConfig {
  Entrypoint?: string[];
  Cmd?: string[];
  Env?: string[];
  WorkingDir?: string;
  User?: string;
  Labels?: Record<string, string>;
  ExposedPorts?: Record<string, unknown>;
  StopSignal?: string;
}

export interface ImageConfig {
  architecture?: string;
  os?: string;
  variant?: string;
  config?: ImageRuntimeConfig;
  rootfs: { type: string; diff_ids: Digest[] };
  [key: string]: unknown;
}

/** An image resolved to one platform: its manifest, config and layers, all digest-verified. */
export interface ResolvedImage {
  /** The reference as the user gave it, normalised. */
  reference: string;
  /** Digest of the image index when the reference pointed at one. */
  indexDigest?: Digest;
  /** Raw bytes of the index when there was one (push copies it verbatim). */
  indexBytes?: Uint8Array;
  indexMediaType?: string;
  manifestDigest: Digest;
  manifestMediaType: string;
  /** Raw manifest bytes, exactly as stored (their sha256 is manifestDigest). */
  manifestBytes: Uint8Array;
  configDescriptor: Descriptor;
  configBytes: Uint8Array;
  config: ImageConfig;
  layers: LayerDescriptor[];
  platform?: Platform;
}

export interface ResolveOptions {
  /** Platform to pick from an image index; default `linux/<host arch>`. */
  platform?: Platform;
  /** Called with the manifest or index the reference names as soon as it is in (e.g. to start related fetches). */
  onTopManifest?: (top: RawManifest) => void;
}

export interface RangeOptions {
  signal?: AbortSignal;
}

/**
 * Counters every source keeps. For a registry they count HTTP traffic; for local sources
 * (layout, archive) they count local file reads and `networkBytesReceived` stays 0, so a
 * caller can prove that indexing a local layout touched no network.
 */
export interface SourceStats {
  /** Requests made (HTTP requests incl. retries and auth round trips; local blob reads). */
  requests: number;
  /** Body bytes received (HTTP) or read from local files. */
  bytesReceived: number;
  /** Byte-range reads (readBlobRange calls that reached the network or disk). */
  rangeRequests: number;
  /** Body bytes that came over the network: always 0 for local sources. */
  networkBytesReceived: number;
}

/** A manifest or index as stored, with its media type. */
export interface RawManifest {
  digest: Digest;
  mediaType: string;
  bytes: Uint8Array;
}

export interface ImageSource {
  /** What kind of source this is, for logs and metrics. */
  readonly kind: 'oci-layout' | 'oci-archive' | 'registry';
  /** Normalised reference string, safe to log (no credentials). */
  readonly reference: string;
  resolve(options?: ResolveOptions): Promise<ResolvedImage>;
  /** Stream a whole blob. The stream errors with DigestMismatchError if the content is not `digest`. */
  openBlob(digest: Digest, options?: RangeOptions): Promise<Readable>;
  /** Read bytes [start, end) of a blob (end exclusive). Throws LayerNotFoundError for a missing blob. */
  readBlobRange(digest: Digest, start: number, end: number, options?: RangeOptions): Promise<Buffer>;
  /** Whether the blob exists in this source. */
  hasBlob(digest: Digest): Promise<boolean>;
  /** The manifest or index the reference names, before any platform is picked (push copies it). */
  topManifest(): Promise<RawManifest>;
  /** A manifest or index by digest, digest-verified (push walks indexes with it). */
  fetchManifest(digest: Digest): Promise<RawManifest>;
  /** Traffic counters since the source was opened. */
  stats(): SourceStats;
  close(): Promise<void>;
}
