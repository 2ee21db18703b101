// `clip publish <local image> <registry/repo:tag>`: the build-worker pipeline — index the
// local layout and push the image concurrently, then publish the archive into the same
// registry as an OCI artifact referring to the image (see docs/publish.md).
import type { Command } from 'commander';
import { createLogger, formatSize, parseSize, UsageError, parsePlatform } from '@clip/shared';
import type { PublishSummary } from '@clip/indexer';
import { createPublishDisplay } from '../publish-progress.js';
import { checkProfileRuntimeFlags, collectFlag, PROFILE_HELP, type ProfileFlags, profileRecorder } from '../profile-options.js';

interface PublishCommandOptions extends ProfileFlags {
  profile?: boolean;
  output?: string;
  json?: boolean;
  spanSize: string;
  platform?: string;
  concurrency: string;
  indexConcurrency?: string;
  insecure?: boolean;
  progress?: boolean;
  bind?: boolean;
  signKey?: string;
  inlineWindows?: boolean;
  profileCheckpoints?: boolean;
}

function positiveInteger(text: string | undefined, flag: string): number | undefined {
  if (text === undefined) return undefined;
  const value = Number(text);
  if (!Number.isInteger(value) || value < 1 || value > 64)
    throw new UsageError(`invalid ${flag} ${JSON.stringify(text)}: expected an integer from 1 to 64`);
  return value;
}

function formatPublishSummary(s: PublishSummary): string {
  const { stages } = s;
  const savings =
    s.indexingTimeSavedSeconds === null
      ? 'no layer was uploaded, so there is no push rate to estimate the savings from'
      : `indexing from the registry instead would have taken ~${s.estimatedRegistryIndexSeconds?.toFixed(1)} s after the push (saved ~${s.indexingTimeSavedSeconds.toFixed(1)} s)`;
  return (
    `published ${s.reference}@${s.imageDigest}\n` +
    `deploy ${s.deploy}${s.archive.boundIndexDigest ? ' (pins the archive)' : ' (archive not bound: workers need --archive-digest, --verify-key or --trust-referrers)'}` +
    `${s.archive.signedBy ? `; archive signed by ${s.archive.signedBy}` : ''}\n` +
    `archive ${s.archive.blobDigest} (${formatSize(s.archive.bytes)}) as artifact ${s.archive.artifactDigest}` +
    `${s.archive.windows ? `, windows ${s.archive.windows.digest} (${formatSize(s.archive.windows.bytes)}, fetched by range)` : ''}` +
    `${s.archive.fallbackTag ? ` (referrers tag ${s.archive.fallbackTag})` : ''}${s.archive.path ? `, kept at ${s.archive.path}` : ''}\n` +
    (s.archive.profile
      ? `profile ${s.archive.profile.digest} (${formatSize(s.archive.profile.bytes)}, ${s.archive.profile.files} files) in the same artifact\n`
      : '') +
    `index ${stages.indexSeconds.toFixed(1)} s | push ${stages.pushSeconds.toFixed(1)} s | archive push ${stages.archivePushSeconds.toFixed(1)} s | total ${stages.totalSeconds.toFixed(1)} s\n` +
    `pushed ${formatSize(s.bytesPushed)} (${s.blobs.uploaded} blobs uploaded, ${s.blobs.skipped} already there); ` +
    `indexed ${formatSize(s.bytesIndexed)} locally, ${formatSize(s.indexNetworkBytes)} over the network; ${savings}\n`
  );
}

export function register(program: Command): void {
  program
    .command('publish')
    .usage('[options] <source> <target> [-- command args...]')
    .description('index a local image and push it concurrently, then publish the archive to the registry as an OCI artifact')
    .argument('<source>', 'oci:<dir>[:<tag>] or oci-archive:<file>[:<tag>]')
    .argument('<target>', 'registry reference to publish to, e.g. 127.0.0.1:5000/app:v1')
    .argument('[command...]', "with --profile: the command to profile instead of the image's Entrypoint + Cmd (after --)")
    .option('-o, --output <file.clip>', 'also keep the archive here')
    .option('--json', 'print the summary (stages, bytes, savings) as JSON on stdout')
    .option('--span-size <size>', 'uncompressed bytes between decompression checkpoints', '1MiB')
    .option('--platform <os/arch[/variant]>', 'platform to index from an image index (default: this machine)')
    .option('--concurrency <n>', 'blobs uploaded at once', '3')
    .option('--index-concurrency <n>', 'layers scanned at once (default: number of CPUs)')
    .option('--insecure', 'allow plain HTTP / unverified TLS to a non-loopback registry')
    .option('--no-progress', 'no progress output on stderr')
    .option(
      '--no-bind',
      'leave the tag on the image alone instead of an index that binds image and archive (workers then need --archive-digest, --verify-key or --trust-referrers)',
    )
    .option(
      '--inline-windows',
      'keep the checkpoint windows inside the pushed archive (by default they go to a blob beside it, fetched by range)',
    )
    .option('--sign-key <file>', 'sign the archive binding with this ed25519 private key (PEM, PKCS#8) for workers with --verify-key')
    .option('--profile', PROFILE_HELP.profile)
    .option('--profile-seconds <n>', PROFILE_HELP.seconds, '10')
    .option(
      '--no-profile-checkpoints',
      'with --profile: keep the checkpoints every --span-size only (by default gzip layers are indexed again with a checkpoint where each profiled read starts)',
    )
    .option('--runtime <path>', PROFILE_HELP.runtime, 'runc')
    .option('--runtime-flag <flag>', PROFILE_HELP.runtimeFlag, collectFlag, [] as string[])
    .action(async (source: string, target: string, words: string[], options: PublishCommandOptions) => {
      if (words.length > 0 && !options.profile) throw new UsageError(`a command (${words.join(' ')}) is only taken with --profile`);
      if (options.profile) await checkProfileRuntimeFlags(options);
      const pushConcurrency = positiveInteger(options.concurrency, '--concurrency');
      const indexConcurrency = positiveInteger(options.indexConcurrency, '--index-concurrency');
      const [{ publish }, { loadSigningKey }] = await Promise.all([import('@clip/indexer'), import('@clip/registry-fetch')]);
      const signKey = options.signKey ? await loadSigningKey(options.signKey) : undefined;
      const display = options.progress === false ? undefined : createPublishDisplay(process.stderr);
      const logger = createLogger(display ? { write: display.log } : {});
      try {
        const summary = await publish({
          source,
          target,
          spanSize: parseSize(options.spanSize),
          logger,
          ...(options.profile ? { profile: profileRecorder(options, words, logger) } : {}),
          ...(options.profileCheckpoints === false ? { profileCheckpoints: false } : {}),
          ...(options.output ? { output: options.output } : {}),
          ...(options.platform ? { platform: parsePlatform(options.platform) } : {}),
          ...(pushConcurrency !== undefined ? { pushConcurrency } : {}),
          ...(indexConcurrency !== undefined ? { indexConcurrency } : {}),
          ...(options.insecure ? { insecure: true } : {}),
          ...(options.bind === false ? { bind: false } : {}),
          ...(options.inlineWindows ? { inlineWindows: true } : {}),
          ...(signKey ? { signKey } : {}),
          ...(display
            ? { onPlan: display.plan, onIndexProgress: display.index, onPushProgress: display.push, onStage: display.stage }
            : {}),
        });
        display?.finish();
        process.stdout.write(options.json ? `${JSON.stringify(summary, null, 2)}\n` : formatPublishSummary(summary));
      } catch (error) {
        display?.finish();
        throw error;
      }
    });
}
