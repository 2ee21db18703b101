// Options of the build-time access profile, shared by `clip publish --profile` and `clip
// profile`: the time limit, the OCI runtime, and the recorder that runs the image's command on
// a lazy mount (@clip/runtime's recordProfile, with this very CLI as the mount server).
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { type Logger, UsageError } from '@clip/shared';

export interface ProfileFlags {
  profileSeconds: string;
  runtime: string;
  runtimeFlag: string[];
  insecure?: boolean;
}

export const PROFILE_HELP = {
  profile:
    "run the image's command once on a lazy mount (runc sandbox) and publish what it read as the archive's access profile, prefetched by workers",
  seconds: 'stop the profile command after this many seconds (servers never exit)',
  runtime: 'OCI runtime that runs the profile command',
  runtimeFlag: 'global flag put before the runtime command, repeatable',
};

export const collectFlag = (value: string, previous: string[]) => [...previous, value];

/** --profile-seconds, --runtime, --runtime-flag (`clip publish` lists them in its own option chain). */
export function registerProfileOptions(command: Command): Command {
  return command
    .option('--profile-seconds <n>', PROFILE_HELP.seconds, '10')
    .option('--runtime <path>', PROFILE_HELP.runtime, 'runc')
    .option('--runtime-flag <flag>', PROFILE_HELP.runtimeFlag, collectFlag, [] as string[]);
}

export function profileSeconds(text: string): number {
  const seconds = Number(text);
  if (!(seconds > 0) || seconds > 3600)
    throw new UsageError(`invalid --profile-seconds ${JSON.stringify(text)}: expected 0 < seconds ≤ 3600`);
  return seconds;
}

/** Before any work: the profile run's OCI runtime is there (else nothing would be published after the push). */
export async function checkProfileRuntimeFlags(flags: ProfileFlags): Promise<void> {
  const { checkProfileRuntime } = await import('@clip/runtime');
  await checkProfileRuntime(flags.runtime, flags.runtimeFlag);
}

/** Records the profile of an archive file whose layers are in its registry; returns the prefetch-list text. */
export function profileRecorder(flags: ProfileFlags, command: string[], logger: Logger): (archivePath: string) => Promise<Uint8Array> {
  const seconds = profileSeconds(flags.profileSeconds);
  return async (archivePath) => {
    const { recordProfile } = await import('@clip/runtime');
    const recorded = await recordProfile({
      archive: archivePath,
      seconds,
      runtime: flags.runtime,
      ...(flags.runtimeFlag.length > 0 ? { runtimeFlags: flags.runtimeFlag } : {}),
      ...(command.length > 0 ? { command } : {}),
      ...(flags.insecure ? { insecure: true } : {}),
      clipCommand: [process.execPath, fileURLToPath(new URL('./main.js', import.meta.url))],
      logger,
    });
    logger.info('profile command finished', {
      exit_code: recorded.exitCode,
      stopped_at_limit: recorded.stoppedAtLimit,
      run_seconds: recorded.runSeconds,
      files: recorded.files,
    });
    return recorded.profile;
  };
}
