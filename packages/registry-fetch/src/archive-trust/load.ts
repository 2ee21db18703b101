// Loading the archive of a registry reference, trusted: the one place mount, pull-archive,
// cat/ls/inspect (and clip run / the snapshotter) get an archive for an image reference.
//
// Which archive may be served (first that applies):
//   1. --archive-digest: exactly that blob, from the reference's repository.
//   2. the deployed reference is an index that binds an archive to the manifest (clip publish
//      writes one at the tag): exactly that artifact; with --verify-key it must also be signed.
//   3. --verify-key: referrers signed by one of the keys.
//   4. --trust-referrers: any referrer.
//   otherwise: refused (ArchiveUnboundError), since anyone who can push a referrer could
//   choose the file table.
// Every archive, cached or downloaded, then passes verifyArchiveBinding.
// Over 400 lines on purpose: the trust order above is one security decision, reviewed as a whole here.
import type { KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { openArchive, type ClipArchive } from '@clip/archive-format';
import {
  type Digest,
  DigestMismatchError,
  isClipError,
  type Logger,
  parseRegistryReference,
  sha256Digest,
  silentLogger,
} from '@clip/shared';
import type { Descriptor, Platform, RawManifest, ResolvedImage } from '../image-source.js';
import { listReferrers } from '../referrers.js';
import { RegistrySource } from '../registry-source.js';
import { parseIndexEntries } from '../resolve.js';
import { isIndexMediaType } from '../media-types.js';
import { ARCHIVE_ARTIFACT_TYPE, ArchiveNotPublishedError } from '../archive-artifact/artifact.js';
import { cachedArchivePath, defaultArchiveCacheDir, writeFileAtomically } from '../archive-artifact/archive-cache.js';
import { BOUND_MANIFEST_ANNOTATION, boundArtifacts } from './bound-index.js';
import { ArchiveUnboundError } from './errors.js';
import { archiveSizeLimit, downloadArchiveBlob, readArchiveArtifact } from './fetch-archive.js';
import { checkSignature } from './signature.js';
import { countProfileFiles, type LoadedProfile, storeProfileSidecar } from '../archive-artifact/profile.js';
import { type AcceptedProfile, fetchProfile, profileOfArtifact } from './profile-trust.js';
import { verifyArchiveBinding, type BindingExpectation, type RepositoryName } from './verify-archive-binding.js';

export interface TrustOptions {
  /** Serve exactly this archive blob (sha256 of the .clip). */
  archiveDigest?: Digest;
  /** Accept unbound referrers (still fully checked). */
  trustReferrers?: boolean;
  /** Require an archive signature by one of these ed25519 public keys. */
  verifyKeys?: readonly KeyObject[];
  /** Repositories the reference mirrors: archives storing layers there are accepted too. */
  mirrorOf?: readonly RepositoryName[];
}

export interface LoadArchiveOptions extends TrustOptions {
  /** Default: defaultArchiveCacheDir(). */
  cacheDir?: string;
  platform?: Platform;
  insecure?: boolean;
  logger?: Logger;
  /** Download again even when the cache has the archive. */
  refresh?: boolean;
  /** Read from this source (one host of a hosts.toml list, see pull-hosts.ts) instead of the registry itself; closed when done. */
  source?: RegistrySource;
}

/** Why an archive was trusted. */
export type TrustBasis = 'pinned' | 'bound-index' | 'signature' | 'trusted-referrer';

export interface LoadedArchive {
  reference: string;
  manifestDigest: Digest;
  /** The verified archive in the cache. */
  path: string;
  cached: boolean;
  archiveBytes: number;
  /** sha256 of the archive (the blob). */
  blobDigest: Digest;
  artifactDigest?: Digest;
  trust: TrustBasis;
  /** How the artifact was found: the deployed index, the referrers API or tag, or the pinned blob. */
  via: 'index' | 'api' | 'tag' | 'digest';
  /** Fingerprint of the key that signed it, when a signature was required. */
  signedBy?: string;
  networkBytes: number;
  /** The artifact's access profile (a second layer), verified and kept next to the archive. */
  profile?: LoadedProfile;
}

/** One archive that may be served, before it is downloaded and checked. */
export interface Candidate {
  trust: TrustBasis;
  via: LoadedArchive['via'];
  /** Artifact manifest (absent for a pinned blob). */
  artifact?: Descriptor;
}

export interface CandidateReport {
  artifactDigest?: Digest;
  blobDigest?: Digest;
  bytes?: number;
  via: LoadedArchive['via'];
  /** Whether it would be accepted under the given trust options (and why not). */
  usable: boolean;
  /** The one a worker with these options serves: the first usable in this order (none when pinned). */
  chosen: boolean;
  reason?: string;
  signedBy?: string;
  /** Its access profile layer (checked like the archive). */
  profileDigest?: Digest;
}

/** Bound artifact manifests fetched ahead (an index binds one per platform; more is unusual). */
const MAX_PREFETCHED_ARTIFACTS = 4;

interface Context {
  source: RegistrySource;
  /** Manifests by digest, fetched at most once (bound artifacts start while the image resolves). */
  manifest(digest: Digest): Promise<RawManifest>;
  image: ResolvedImage;
  expectation: BindingExpectation;
  limit: number;
  options: LoadArchiveOptions;
  logger: Logger;
  cacheDir: string;
}

/** A usable archive: bytes, opened and checked. */
interface Accepted {
  bytes: Uint8Array;
  archive: ClipArchive;
  blobDigest: Digest;
  signedBy?: string;
  fromCache: boolean;
  path: string;
  profile?: AcceptedProfile;
}

function openContext(reference: string, options: LoadArchiveOptions) {
  const ref = parseRegistryReference(reference);
  const logger = options.logger ?? silentLogger;
  const source = options.source ?? new RegistrySource(ref, { logger, ...(options.insecure ? { insecure: true } : {}) });
  return { ref, logger, source };
}

async function resolveContext(reference: string, options: LoadArchiveOptions): Promise<Context> {
  const { ref, logger, source } = openContext(reference, options);
  const manifests = new Map<Digest, Promise<RawManifest>>();
  const manifest = (digest: Digest) => {
    let fetching = manifests.get(digest);
    if (!fetching) {
      fetching = source.fetchManifest(digest);
      fetching.catch(() => {}); // awaited by whoever needs it
      manifests.set(digest, fetching);
    }
    return fetching;
  };
  // The index at the tag names the bound artifacts: their manifests come while the platform
  // manifest and config are fetched (one round trip less before the archive download).
  const onTopManifest = (top: RawManifest) => {
    if (!isIndexMediaType(top.mediaType) || options.archiveDigest) return;
    try {
      const entries = parseIndexEntries(top.bytes, `image index ${top.digest}`);
      const bound = entries.filter((entry) => entry.annotations?.[BOUND_MANIFEST_ANNOTATION] !== undefined);
      for (const entry of bound.slice(0, MAX_PREFETCHED_ARTIFACTS)) void manifest(entry.digest);
    } catch {
      // A malformed index fails in resolve, with its own message.
    }
  };
  try {
    const image = await source.resolve({ ...(options.platform ? { platform: options.platform } : {}), onTopManifest });
    return {
      source,
      manifest,
      image,
      expectation: {
        image,
        foundThrough: { registry: ref.registry, repository: ref.repository },
        ...(options.mirrorOf ? { mirrorOf: options.mirrorOf } : {}),
      },
      limit: archiveSizeLimit(image.layers),
      options,
      logger,
      cacheDir: options.cacheDir ?? defaultArchiveCacheDir(),
    };
  } catch (error) {
    await source.close();
    throw error;
  }
}

/** Bound artifacts of the deployed index, then (if allowed) referrers in digest order. */
async function candidates(context: Context, forListing = false): Promise<Candidate[]> {
  const { image, options, source } = context;
  if (options.archiveDigest && !forListing) return [{ trust: 'pinned', via: 'digest' }];
  const bound = image.indexBytes
    ? boundArtifacts(parseIndexEntries(image.indexBytes, `image index ${image.indexDigest}`), image.manifestDigest)
    : [];
  const found: Candidate[] = bound.map((artifact) => ({ trust: 'bound-index', via: 'index', artifact }));
  if (found.length > 0 && !forListing) return found;
  const referrersAllowed = options.trustReferrers || (options.verifyKeys?.length ?? 0) > 0;
  if (!referrersAllowed && !forListing) return [];
  const lookup = await listReferrers(source.client, image.manifestDigest, { artifactType: ARCHIVE_ARTIFACT_TYPE });
  // Deterministic whatever order the registry lists them in: by artifact digest.
  const referrers = [...lookup.referrers].sort((a, b) => (a.digest < b.digest ? -1 : a.digest > b.digest ? 1 : 0));
  for (const artifact of referrers) {
    if (found.some((known) => known.artifact?.digest === artifact.digest)) continue;
    found.push({ trust: options.verifyKeys?.length ? 'signature' : 'trusted-referrer', via: lookup.via, artifact });
  }
  return found;
}

function archiveLocation(context: Context): RepositoryName {
  return context.expectation.foundThrough;
}

/** Opens and checks archive bytes; throws a ClipError naming what is wrong. */
function check(context: Context, bytes: Uint8Array, what: string): ClipArchive {
  const archive = openArchive(bytes);
  verifyArchiveBinding(archive, context.expectation, what);
  return archive;
}

async function fromCache(context: Context, blobDigest: Digest): Promise<Accepted | undefined> {
  if (context.options.refresh) return undefined;
  const path = cachedArchivePath(context.cacheDir, archiveLocation(context), blobDigest);
  const bytes = await readFile(path).catch(() => undefined);
  if (!bytes) return undefined;
  try {
    // The file name is only a claim: whoever can write the cache directory could plant another archive.
    const actual = sha256Digest(bytes);
    if (actual !== blobDigest) throw new DigestMismatchError(`cached archive ${path}`, blobDigest, actual);
    const archive = check(context, bytes, `cached archive ${path}`);
    return { bytes, archive, blobDigest, fromCache: true, path };
  } catch (error) {
    if (!isClipError(error)) throw error;
    context.logger.warn('cached archive unusable; downloading it again', { path, error: error.message });
    return undefined;
  }
}

/** Everything about one candidate, short of caching it. Throws a ClipError when it is not usable. */
async function accept(context: Context, candidate: Candidate): Promise<Accepted> {
  const { source, image, limit, options } = context;
  let blobDigest: Digest;
  let size: number | undefined;
  let signedBy: string | undefined;
  let profile: ReturnType<typeof profileOfArtifact>;
  if (!candidate.artifact) {
    blobDigest = options.archiveDigest!;
  } else {
    const artifact = await readArchiveArtifact(source, candidate.artifact, image.manifestDigest, limit, context.manifest);
    blobDigest = artifact.blob.digest;
    size = artifact.blob.size;
    if (options.verifyKeys?.length) {
      const verdict = checkSignature(
        artifact.manifest.annotations,
        { archiveDigest: blobDigest, manifestDigest: image.manifestDigest, storage: archiveLocation(context) },
        options.verifyKeys,
      );
      // A mirror serves the origin's signed artifacts: the signature names the origin.
      const viaMirror = verdict.ok
        ? verdict
        : ((options.mirrorOf ?? [])
            .map((origin) =>
              checkSignature(
                artifact.manifest.annotations,
                { archiveDigest: blobDigest, manifestDigest: image.manifestDigest, storage: origin },
                options.verifyKeys!,
              ),
            )
            .find((result) => result.ok) ?? verdict);
      if (!viaMirror.ok)
        throw new ArchiveUnboundError(`archive artifact ${candidate.artifact.digest} in ${source.reference}: ${viaMirror.reason}`);
      signedBy = viaMirror.key;
    }
    profile = profileOfArtifact(
      artifact,
      {
        archiveDigest: blobDigest,
        manifestDigest: image.manifestDigest,
        storages: [archiveLocation(context), ...(options.mirrorOf ?? [])],
      },
      options.verifyKeys,
      `archive artifact ${candidate.artifact.digest} in ${source.reference}`,
    );
  }
  const path = cachedArchivePath(context.cacheDir, archiveLocation(context), blobDigest);
  // The profile comes while the archive downloads (it is checked against the artifact, not the archive).
  const fetchingProfile = profile ? fetchProfile(source, profile, path, `archive artifact ${candidate.artifact?.digest}`) : undefined;
  fetchingProfile?.catch(() => {}); // awaited below, unless the archive fails first
  const withProfile = async (accepted: Accepted): Promise<Accepted> =>
    fetchingProfile ? { ...accepted, profile: await fetchingProfile } : accepted;
  const cached = await fromCache(context, blobDigest);
  if (cached) return withProfile({ ...cached, ...(signedBy ? { signedBy } : {}) });
  const bytes = await downloadArchiveBlob(source, blobDigest, size, limit);
  const archive = check(
    context,
    bytes,
    `archive ${blobDigest}${candidate.artifact ? ` (artifact ${candidate.artifact.digest})` : ''} in ${source.reference}`,
  );
  return withProfile({ bytes, archive, blobDigest, fromCache: false, path, ...(signedBy ? { signedBy } : {}) });
}

async function refuseUnbound(context: Context): Promise<never> {
  const { source, image } = context;
  const lookup = await listReferrers(source.client, image.manifestDigest, { artifactType: ARCHIVE_ARTIFACT_TYPE });
  if (lookup.referrers.length === 0) {
    throw new ArchiveNotPublishedError(
      `no clip archive is published for ${source.reference} (manifest ${image.manifestDigest}); ` +
        `looked for an archive bound by the image index and for ${ARCHIVE_ARTIFACT_TYPE} referrers via the referrers API and the tag ${image.manifestDigest.replace(':', '-')} — run clip publish`,
    );
  }
  throw new ArchiveUnboundError(
    `no archive is bound to ${source.reference} (manifest ${image.manifestDigest}): ${lookup.referrers.length} archive referrer(s) exist, ` +
      'but anyone who can push to the repository can add one; deploy the reference clip publish printed (its tag or index digest), ' +
      'pin one with --archive-digest, require a signature with --verify-key, or accept referrers with --trust-referrers',
  );
}

/** Failures that say nothing about the candidate itself. */
const TRANSIENT = new Set(['CLIP_E_REGISTRY', 'CLIP_E_AUTH', 'CLIP_E_TIMEOUT']);

/** Finds, checks and caches the archive that may be served for `reference`. */
export async function loadArchiveForReference(reference: string, options: LoadArchiveOptions = {}): Promise<LoadedArchive> {
  const context = await resolveContext(reference, options);
  const { source, image, logger } = context;
  try {
    const list = await candidates(context);
    if (list.length === 0) return await refuseUnbound(context);
    const failures: string[] = [];
    for (const candidate of list) {
      let accepted: Accepted;
      try {
        accepted = await accept(context, candidate);
      } catch (error) {
        // A pinned or bound archive that fails is an error: nothing else may stand in for it.
        // Nor may an unreachable registry make the next referrer win: only invalid ones are skipped.
        if (!isClipError(error) || candidate.trust === 'pinned' || candidate.trust === 'bound-index' || TRANSIENT.has(error.code))
          throw error;
        logger.warn('skipping invalid archive referrer', {
          reference: source.reference,
          artifact: candidate.artifact?.digest,
          error: error.message,
        });
        failures.push(`${candidate.artifact?.digest}: ${error.message}`);
        continue;
      }
      if (!accepted.fromCache) await writeFileAtomically(accepted.path, accepted.bytes);
      // The sidecar always matches the artifact just accepted (a pinned blob has no profile).
      const profilePath = await storeProfileSidecar(accepted.path, accepted.profile?.bytes);
      logger.info(accepted.fromCache ? 'using cached archive' : 'downloaded archive', {
        reference: source.reference,
        manifest_digest: image.manifestDigest,
        trust: candidate.trust,
        via: candidate.via,
        artifact: candidate.artifact?.digest,
        archive: accepted.blobDigest,
        ...(accepted.signedBy ? { signed_by: accepted.signedBy } : {}),
        ...(list.length > 1 ? { candidates: list.length, chosen: 'first valid by artifact digest' } : {}),
        bytes: accepted.bytes.length,
        path: accepted.path,
        ...(accepted.profile ? { profile: accepted.profile.digest, profile_bytes: accepted.profile.bytes.length } : {}),
      });
      return {
        reference: source.reference,
        manifestDigest: image.manifestDigest,
        path: accepted.path,
        cached: accepted.fromCache,
        archiveBytes: accepted.archive.byteLength,
        blobDigest: accepted.blobDigest,
        ...(candidate.artifact ? { artifactDigest: candidate.artifact.digest } : {}),
        trust: candidate.trust,
        via: candidate.via,
        ...(accepted.signedBy ? { signedBy: accepted.signedBy } : {}),
        networkBytes: source.stats().networkBytesReceived,
        ...(accepted.profile && profilePath
          ? {
              profile: {
                digest: accepted.profile.digest,
                bytes: accepted.profile.bytes.length,
                files: countProfileFiles(accepted.profile.bytes),
                path: profilePath,
              },
            }
          : {}),
      };
    }
    throw new ArchiveNotPublishedError(
      `no valid clip archive for ${source.reference} (manifest ${image.manifestDigest}) among ${list.length} referrer(s): ${failures.join('; ')}`,
    );
  } finally {
    await source.close();
  }
}

/** Every archive candidate of `reference` (bound and referrers), each checked; nothing is cached. */
export async function listArchiveCandidates(
  reference: string,
  options: LoadArchiveOptions = {},
): Promise<{ reference: string; manifestDigest: Digest; candidates: CandidateReport[] }> {
  const context = await resolveContext(reference, { ...options, refresh: true });
  const { source, image } = context;
  try {
    const reports: CandidateReport[] = [];
    const referrersAllowed = options.trustReferrers || (options.verifyKeys?.length ?? 0) > 0;
    for (const candidate of await candidates(context, true)) {
      const report: CandidateReport = {
        via: candidate.via,
        usable: false,
        chosen: false,
        ...(candidate.artifact ? { artifactDigest: candidate.artifact.digest } : {}),
      };
      try {
        const accepted = await accept(context, candidate);
        report.blobDigest = accepted.blobDigest;
        report.bytes = accepted.bytes.length;
        if (accepted.signedBy) report.signedBy = accepted.signedBy;
        if (accepted.profile) report.profileDigest = accepted.profile.digest;
        const trusted = candidate.trust === 'bound-index' || referrersAllowed || options.archiveDigest === accepted.blobDigest;
        report.usable = trusted;
        if (!trusted) report.reason = 'unbound referrer (needs --trust-referrers, --verify-key or --archive-digest)';
      } catch (error) {
        if (!isClipError(error)) throw error;
        report.reason = error.message;
      }
      reports.push(report);
    }
    // Bound archives come first and referrers in digest order, as loadArchiveForReference tries them.
    const first = options.archiveDigest ? undefined : reports.find((report) => report.usable);
    if (first) first.chosen = true;
    return { reference: source.reference, manifestDigest: image.manifestDigest, candidates: reports };
  } finally {
    await source.close();
  }
}
