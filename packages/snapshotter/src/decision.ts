// Remote or fallback: a layer is served lazily when its image has a published clip archive
// that indexes exactly this layer at this position of the chain; otherwise containerd
// unpacks it as usual. Labels that contradict the image (a layer digest or chain ID it does
// not have) are a malformed request, not a reason to guess.
import { createHash } from 'node:crypto';
import { isClipError } from '@clip/shared';
import { SnapshotArgumentError } from './errors.js';
import type { RemoteLayerRequest } from './labels.js';

export interface ResolvedImage {
  /** Canonical reference (registry/repo[:tag]@digest). */
  imageRef: string;
  manifestDigest: string;
  archivePath: string;
  /** Bottom first. */
  layers: ReadonlyArray<{ digest: string; diffId: string }>;
}

/** Finds, downloads and verifies an image's published archive (`clip pull-archive`'s logic). */
export interface ArchiveResolver {
  resolve(imageRef: string): Promise<ResolvedImage>;
}

export type FallbackReason =
  | 'missing_labels'
  | 'no_archive'
  | 'untrusted_archive'
  | 'image_changed'
  | 'registry_error'
  | 'archive_error'
  | 'mount_failed';

export type Decision =
  | { kind: 'remote'; image: ResolvedImage; layerIndex: number }
  | { kind: 'fallback'; reason: FallbackReason; detail: string };

/** containerd's identity chain IDs: chain[0] = diffID[0], chain[i] = sha256(chain[i-1] + " " + diffID[i]). */
export function chainIds(diffIds: readonly string[]): string[] {
  const chain: string[] = [];
  for (const diffId of diffIds) {
    const previous = chain[chain.length - 1];
    chain.push(previous === undefined ? diffId : `sha256:${createHash('sha256').update(`${previous} ${diffId}`).digest('hex')}`);
  }
  return chain;
}

const NOT_PUBLISHED_CODES = new Set(['CLIP_E_ARCHIVE_NOT_PUBLISHED', 'CLIP_E_MANIFEST_NOT_FOUND']);
// An archive exists but nothing binds it to the image (no index, signature or --trust-referrers).
const UNTRUSTED_CODES = new Set(['CLIP_E_ARCHIVE_UNBOUND', 'CLIP_E_ARCHIVE_UNTRUSTED']);
const ARCHIVE_CODES = new Set(['CLIP_E_ARCHIVE_FORMAT', 'CLIP_E_DIGEST_MISMATCH']);

/** Why resolving failed, as a fallback reason. */
export function fallbackReasonOf(error: unknown): FallbackReason {
  const code = isClipError(error) ? error.code : '';
  if (NOT_PUBLISHED_CODES.has(code)) return 'no_archive';
  if (UNTRUSTED_CODES.has(code)) return 'untrusted_archive';
  if (ARCHIVE_CODES.has(code)) return 'archive_error';
  return 'registry_error';
}

export class RemoteDecider {
  private readonly memo = new Map<string, { at: number; result: Promise<ResolvedImage> }>();

  constructor(
    private readonly resolver: ArchiveResolver,
    private readonly memoMs = 60_000,
  ) {}

  /**
   * Decides for one layer. `parentChainId` is the chain ID the parent snapshot was created
   * for (its containerd.io/snapshot.ref label), when known.
   */
  async decide(request: RemoteLayerRequest, parentChainId: string | undefined, hasParent: boolean): Promise<Decision> {
    // The reference as deployed (tag or index digest), not pinned to the manifest: the archive's
    // binding lives in the image index at that reference.
    let image: ResolvedImage;
    try {
      image = await this.resolveMemo(request.imageRef);
    } catch (error) {
      return { kind: 'fallback', reason: fallbackReasonOf(error), detail: error instanceof Error ? error.message : String(error) };
    }
    if (request.manifestDigest && request.manifestDigest !== image.manifestDigest) {
      return {
        kind: 'fallback',
        reason: 'image_changed',
        detail: `${request.imageRef} now resolves to manifest ${image.manifestDigest}, containerd is pulling ${request.manifestDigest}`,
      };
    }
    const layerIndex = image.layers.findIndex((l) => l.digest === request.layerDigest);
    if (layerIndex < 0) {
      throw new SnapshotArgumentError(`labels name layer ${request.layerDigest}, which image ${image.imageRef} does not have`);
    }
    const chain = chainIds(image.layers.map((l) => l.diffId));
    if (chain[layerIndex] !== request.target) {
      throw new SnapshotArgumentError(
        `snapshot ${request.target} is not layer ${layerIndex + 1} of ${image.imageRef} (its chain ID is ${chain[layerIndex] ?? '?'}): the labels point at another image`,
      );
    }
    const expectedParent = layerIndex > 0 ? chain[layerIndex - 1] : undefined;
    if (expectedParent === undefined ? hasParent : !hasParent || (parentChainId !== undefined && parentChainId !== expectedParent)) {
      throw new SnapshotArgumentError(
        `wrong parent for layer ${layerIndex + 1} of ${image.imageRef}: expected ${expectedParent ? `the snapshot of chain ID ${expectedParent}` : 'no parent'}`,
      );
    }
    return { kind: 'remote', image, layerIndex };
  }

  private resolveMemo(ref: string): Promise<ResolvedImage> {
    const now = Date.now();
    const hit = this.memo.get(ref);
    if (hit && now - hit.at < this.memoMs) return hit.result;
    const result = this.resolver.resolve(ref);
    this.memo.set(ref, { at: now, result });
    return result;
  }
}
