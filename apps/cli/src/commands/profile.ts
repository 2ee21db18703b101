// `clip profile <archive|ref> [-- command args...]`: record the build-time access profile of an
// image that is already published (or of a .clip file whose layers are in its registry): run
// the image's command once in a runc sandbox on a lazy mount, stop it at --profile-seconds,
// and publish what it read with the archive (re-bound like clip publish) or, for a file,
// write it next to the archive (`app.profile`, which `clip mount app.clip` applies).
import { writeFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { createLogger, formatSize, UsageError } from '@clip/shared';
import { addTrustOptions, trustOptionsFrom, type TrustFlags } from '../archive-trust/cli-options.js';
import { checkProfileRuntimeFlags, type ProfileFlags, profileRecorder, registerProfileOptions } from '../profile-options.js';

interface ProfileCommandOptions extends ProfileFlags, TrustFlags {
  output?: string;
  bind?: boolean;
  signKey?: string;
  json?: boolean;
}

export function register(program: Command): void {
  const command = program
    .command('profile')
    .usage('[options] <archive|image> [-- command args...]')
    .description(
      "record an image's access profile (its command run once in a runc sandbox on a lazy mount, stopped at --profile-seconds) and publish it with the archive",
    )
    .argument('<archive|image>', 'registry reference of a published image, or a .clip file whose layers are in its registry')
    .argument('[command...]', "command and arguments after --, instead of the image's Entrypoint + Cmd")
    .option(
      '-o, --output <file>',
      'write the profile here (for a .clip file; default <archive without .clip>.profile, applied by clip mount)',
    )
    .option('--no-bind', 'do not put a new bound index at the tag (workers then need --verify-key or --trust-referrers to see the profile)')
    .option('--sign-key <file>', 'sign the archive and its profile with this ed25519 private key (PEM, PKCS#8)')
    .option('--insecure', 'allow plain HTTP / unverified TLS to a non-loopback registry')
    .option('--json', 'print the result as JSON on stdout');
  registerProfileOptions(command);
  addTrustOptions(command).action(async (target: string, words: string[], options: ProfileCommandOptions) => {
    const logger = createLogger();
    const record = profileRecorder(options, words, logger);
    await checkProfileRuntimeFlags(options);
    const registry = await import('@clip/registry-fetch');
    if (!(await registry.isRegistryArgument(target))) {
      if (!target.endsWith('.clip') && !options.output) throw new UsageError(`${target} is neither a registry reference nor a .clip file`);
      const profile = await record(target);
      registry.checkProfileSize(profile.length, 'the recorded profile');
      const output = options.output ?? registry.profileSidecarPath(target);
      await writeFile(output, profile);
      const result = { archive: target, profile: output, bytes: profile.length, files: registry.countProfileFiles(profile) };
      process.stdout.write(
        options.json
          ? `${JSON.stringify(result, null, 2)}\n`
          : `profile of ${target}: ${output} (${formatSize(result.bytes)}, ${result.files} files)\n`,
      );
      return;
    }
    if (options.output) throw new UsageError('-o is for a .clip file; a reference gets its profile published with its archive');
    const trust = await trustOptionsFrom(options);
    const signKey = options.signKey ? await registry.loadSigningKey(options.signKey) : undefined;
    // The archive the reference binds, with every trust check a worker makes.
    const loaded = await registry.pullArchive(target, { logger, ...trust, ...(options.insecure ? { insecure: true } : {}) });
    const { republishWithProfile } = await import('@clip/indexer');
    const summary = await republishWithProfile({
      reference: target,
      archivePath: loaded.path,
      record,
      logger,
      ...(options.bind === false ? { bind: false } : {}),
      ...(signKey ? { signKey } : {}),
      ...(options.insecure ? { insecure: true } : {}),
    });
    process.stdout.write(
      options.json
        ? `${JSON.stringify(summary, null, 2)}\n`
        : `profile ${summary.profile.digest} (${formatSize(summary.profile.bytes)}, ${summary.profile.files} files) published with archive ${loaded.blobDigest} as artifact ${summary.artifactDigest}\n` +
            `deploy ${summary.deploy}${summary.boundIndexDigest ? ' (pins archive and profile)' : ''}${summary.signedBy ? `; signed by ${summary.signedBy}` : ''}\n`,
    );
  });
}
