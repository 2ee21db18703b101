// The trust flags every command that loads an archive for an image reference takes (mount,
// pull-archive, cat, ls, inspect), and their translation into TrustOptions.
import type { Command } from 'commander';
import { isDigest, parseRegistryReference, UsageError, type Digest } from '@clip/shared';
import type { TrustOptions } from '@clip/registry-fetch';

export interface TrustFlags {
  archiveDigest?: string;
  trustReferrers?: boolean;
  verifyKey?: string[];
  mirrorOf?: string[];
}

const collect = (value: string, previous: string[] = []) => [...previous, value];

export function addTrustOptions(command: Command): Command {
  return command
    .option(
      '--archive-digest <sha256:hex>',
      "serve exactly this archive (sha256 of the .clip, as clip publish prints it) from the reference's repository",
    )
    .option('--verify-key <file>', 'accept only archives signed with this ed25519 public key (PEM, SPKI); repeatable', collect)
    .option(
      '--trust-referrers',
      'also accept archives that are only referrers of the image (anyone who can push to the repository can add one); every check still applies',
    )
    .option(
      '--mirror-of <registry/repo>',
      'the reference is a mirror of this repository: accept archives whose layers are stored there; repeatable',
      collect,
    );
}

export async function trustOptionsFrom(flags: TrustFlags): Promise<TrustOptions> {
  if (flags.archiveDigest !== undefined && !isDigest(flags.archiveDigest)) {
    throw new UsageError(`invalid --archive-digest ${JSON.stringify(flags.archiveDigest)}: expected sha256:<64 hex digits>`);
  }
  const mirrorOf = (flags.mirrorOf ?? []).map((text) => {
    const ref = parseRegistryReference(text);
    return { registry: ref.registry, repository: ref.repository };
  });
  const keyFiles = flags.verifyKey ?? [];
  // The registry client loads only when a key is given: commands on plain files skip it.
  const verifyKeys = keyFiles.length
    ? await Promise.all(keyFiles.map(async (file) => (await import('@clip/registry-fetch')).loadVerifyKey(file)))
    : [];
  return {
    ...(flags.archiveDigest ? { archiveDigest: flags.archiveDigest as Digest } : {}),
    ...(flags.trustReferrers ? { trustReferrers: true } : {}),
    ...(verifyKeys.length ? { verifyKeys } : {}),
    ...(mirrorOf.length ? { mirrorOf } : {}),
  };
}
