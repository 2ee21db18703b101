// `clip profile <ref>`: an image published before has its archive artifact pushed again with
// a (new) profile layer, and is bound again exactly as `clip publish` binds it (index at the
// tag, signature with --sign-key). The archive blob is already in the registry: only the
// profile, the artifact manifest and the index are uploaded.
import type { KeyObject } from 'node:crypto';
import { type Digest, type Logger, parseImageReference, parseRegistryReference, silentLogger, UsageError } from '@clip/shared';
import { BOUND_MANIFEST_ANNOTATION, openImageSource, type RawManifest } from '@clip/registry-fetch';
import { pushArchive } from './publish.js';
import { type PublishedProfile, recordPublishProfile } from './publish-profile.js';

export interface RepublishOptions {
  /** `registry/repo:tag` the image was published to. */
  reference: string;
  /** The archive bound to it (loaded and checked by the caller, e.g. pullArchive). */
  archivePath: string;
  /** Records the profile on `archivePath`. */
  record: (archivePath: string) => Promise<Uint8Array>;
  bind?: boolean;
  signKey?: KeyObject;
  insecure?: boolean;
  logger?: Logger;
}

export interface RepublishSummary {
  reference: string;
  manifestDigest: Digest;
  artifactDigest: Digest;
  boundIndexDigest?: Digest;
  deploy: string;
  signedBy?: string;
  profile: PublishedProfile;
}

export async function republishWithProfile(options: RepublishOptions): Promise<RepublishSummary> {
  const logger = options.logger ?? silentLogger;
  const ref = parseImageReference(options.reference);
  if (ref.kind !== 'registry')
    throw new UsageError(`clip profile publishes to a registry reference, got ${JSON.stringify(options.reference)}`);
  const targetRef = parseRegistryReference(options.reference);
  const source = await openImageSource(ref, { logger, ...(options.insecure ? { insecure: true } : {}) });
  try {
    const image = await source.resolve({});
    const profile = await recordPublishProfile(options.record, options.archivePath, logger);
    // Bind from what the reference names, minus every archive binding in it: a binding read back
    // from the registry is never carried into the new index (docs/security.md, limitations).
    const rebinding = Object.assign(Object.create(source) as typeof source, {
      topManifest: async () => withoutArchiveBindings(await source.topManifest(), image.manifestDigest, logger),
    });
    const published = await pushArchive(
      {
        source: options.reference,
        target: options.reference,
        ...(options.bind === false ? { bind: false } : {}),
        ...(options.signKey ? { signKey: options.signKey } : {}),
        ...(options.insecure ? { insecure: true } : {}),
      },
      rebinding,
      image,
      targetRef,
      options.archivePath,
      logger,
      profile,
    );
    const deployed = published.boundIndexDigest ?? image.manifestDigest;
    logger.info('profile published', {
      reference: options.reference,
      artifact: published.artifact.manifest.digest,
      profile: published.profile?.digest,
      index_digest: published.boundIndexDigest,
    });
    return {
      reference: options.reference,
      manifestDigest: image.manifestDigest,
      artifactDigest: published.artifact.manifest.digest,
      ...(published.boundIndexDigest ? { boundIndexDigest: published.boundIndexDigest } : {}),
      deploy: `${targetRef.registry}/${targetRef.repository}@${deployed}`,
      ...(published.signedBy ? { signedBy: published.signedBy } : {}),
      profile: published.profile!,
    };
  } finally {
    await source.close();
  }
}

/** The index at the reference without its archive entries (an image manifest is returned as it is). */
function withoutArchiveBindings(top: RawManifest, manifestDigest: Digest, logger: Logger): RawManifest {
  const json = JSON.parse(Buffer.from(top.bytes).toString('utf8')) as { manifests?: Array<{ annotations?: Record<string, string> }> };
  if (!Array.isArray(json.manifests)) return top;
  const bound = (entry: { annotations?: Record<string, string> }) => entry.annotations?.[BOUND_MANIFEST_ANNOTATION];
  const others = json.manifests.filter((entry) => bound(entry) !== undefined && bound(entry) !== manifestDigest);
  if (others.length > 0)
    logger.warn('dropping the archive bindings of the other platforms in the index (as clip publish --platform does); publish them again', {
      dropped: others.length,
    });
  json.manifests = json.manifests.filter((entry) => bound(entry) === undefined);
  return { ...top, bytes: new TextEncoder().encode(JSON.stringify(json)) };
}
