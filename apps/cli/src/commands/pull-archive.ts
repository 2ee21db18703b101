// `clip pull-archive <registry/repo:tag> [-o file.clip]`: what a runtime worker does before
// mounting — find the archive it may serve for the image (bound by the deployed index, pinned,
// signed, or a trusted referrer), download and verify it, cache it. `--list` shows every
// candidate and whether it would be served.
import type { Command } from 'commander';
import { createLogger, formatSize, parsePlatform } from '@clip/shared';
import { addTrustOptions, trustOptionsFrom, type TrustFlags } from '../archive-trust/cli-options.js';
import { HOSTS_DIR_HELP, hostsDirOption } from '../hosts-option.js';

interface PullArchiveOptions extends TrustFlags {
  hostsDir?: string;
  output?: string;
  cacheDir?: string;
  platform?: string;
  insecure?: boolean;
  refresh?: boolean;
  json?: boolean;
  list?: boolean;
}

const TRUST_TEXT = {
  pinned: 'pinned by --archive-digest',
  'bound-index': 'bound by the image index',
  signature: 'signed',
  'trusted-referrer': 'a referrer (--trust-referrers)',
} as const;

export function register(program: Command): void {
  const command = program
    .command('pull-archive')
    .description(
      'download the .clip archive a worker may serve for an image (bound by its index, pinned, signed or a trusted referrer), verified and cached',
    )
    .argument('<image>', 'registry reference, e.g. 127.0.0.1:5000/app:v1')
    .option('-o, --output <file.clip>', 'copy the archive here (it is always kept in the cache)')
    // biome-ignore lint/suspicious/noTemplateCurlyInString: shell syntax shown in the help text
    .option('--cache-dir <dir>', 'archive cache (default $CLIP_ARCHIVE_CACHE or ${XDG_CACHE_HOME:-~/.cache}/clip/archives)')
    .option('--platform <os/arch[/variant]>', 'platform to pick from an image index (default: this machine)')
    .option('--refresh', 'download again even if the cache has it')
    .option('--list', 'list every archive found for the image (bound and referrers), each checked, and which would be served')
    .option('--insecure', 'allow plain HTTP / unverified TLS to a non-loopback registry')
    .option('--json', 'print the result as JSON on stdout')
    .option('--hosts-dir <dir>', HOSTS_DIR_HELP);
  addTrustOptions(command).action(async (image: string, options: PullArchiveOptions) => {
    const common = {
      logger: createLogger(),
      ...(await trustOptionsFrom(options)),
      ...(options.cacheDir ? { cacheDir: options.cacheDir } : {}),
      ...(options.platform ? { platform: parsePlatform(options.platform) } : {}),
      ...(options.insecure ? { insecure: true } : {}),
    };
    if (options.list) {
      const { listPullCandidates } = await import('@clip/registry-fetch');
      const listing = await listPullCandidates(image, { ...common, ...hostsDirOption(options) });
      if (options.json) {
        process.stdout.write(`${JSON.stringify(listing, null, 2)}\n`);
        return;
      }
      const lines = [`archives for ${listing.reference}@${listing.manifestDigest}: ${listing.candidates.length}`];
      for (const candidate of listing.candidates) {
        lines.push(
          `${candidate.chosen ? 'use ' : candidate.usable ? 'ok  ' : 'no  '} ${candidate.artifactDigest ?? '(pinned blob)'} via ${candidate.via}` +
            `${candidate.blobDigest ? ` archive ${candidate.blobDigest}` : ''}${candidate.bytes !== undefined ? ` (${formatSize(candidate.bytes)})` : ''}` +
            `${candidate.signedBy ? ` signed by ${candidate.signedBy}` : ''}${candidate.reason ? `: ${candidate.reason}` : ''}`,
        );
      }
      process.stdout.write(`${lines.join('\n')}\n`);
      return;
    }
    const { pullArchive } = await import('@clip/registry-fetch');
    const result = await pullArchive(image, {
      ...common,
      ...(options.output ? { output: options.output } : {}),
      ...(options.refresh ? { refresh: true } : {}),
      ...hostsDirOption(options),
    });
    if (options.json) {
      process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
      return;
    }
    process.stdout.write(
      `${result.cached ? 'cached' : 'downloaded'} archive ${result.blobDigest} of ${result.reference}@${result.manifestDigest} ` +
        `(${formatSize(result.archiveBytes)}, ${TRUST_TEXT[result.trust]}): ${result.output ?? result.path}\n` +
        (result.profile
          ? `access profile ${result.profile.digest} (${formatSize(result.profile.bytes)}, ${result.profile.files} files)\n`
          : ''),
    );
  });
}
