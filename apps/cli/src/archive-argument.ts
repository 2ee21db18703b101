// `clip ls` / `clip inspect`: an archive argument (file, URL or image reference, loaded and
// checked as `clip mount` does) opened for its tables only; no layer is read.
import type { ClipArchive } from '@clip/archive-format';
import { createLogger } from '@clip/shared';
import { type TrustFlags, trustOptionsFrom } from './archive-trust/cli-options.js';
import { hostsDirOption } from './hosts-option.js';

export async function openArchiveTables(
  argument: string,
  options: { insecure?: boolean; hostsDir?: string } & TrustFlags,
): Promise<{ location: string; archive: ClipArchive }> {
  const [{ openArchiveLocation }, { resolveArchiveArgument }] = await Promise.all([
    import('@clip/mounter'),
    import('@clip/registry-fetch'),
  ]);
  const insecure = options.insecure ?? false;
  const location = await resolveArchiveArgument(argument, {
    logger: createLogger(),
    insecure,
    ...(await trustOptionsFrom(options)),
    ...hostsDirOption(options),
  });
  const opened = await openArchiveLocation(location, { insecure });
  await opened.close();
  return { location, archive: opened.archive };
}
