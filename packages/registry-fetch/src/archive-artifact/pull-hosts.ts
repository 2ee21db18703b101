// pull-archive (and pull-archive --list) through containerd hosts.toml mirrors: the whole
// lookup (referrers, archive blob) is tried on each host in order, the next host taking over
// when one fails.
import { type Logger, parseRegistryReference } from '@clip/shared';
import { openHostSources } from '../hosts/host-sources.js';
import type { RegistrySource } from '../registry-source.js';

export async function pullArchiveViaHosts<Options extends { logger?: Logger; insecure?: boolean }, Result>(
  reference: string,
  options: Options & { hostsDir: string },
  pullFrom: (reference: string, options: Omit<Options & { hostsDir: string }, 'hostsDir'> & { source: RegistrySource }) => Promise<Result>,
): Promise<Result> {
  const { hostsDir, ...rest } = options;
  const sources = await openHostSources(parseRegistryReference(reference), {
    hostsDir,
    ...(options.logger ? { logger: options.logger } : {}),
    ...(options.insecure ? { insecure: true } : {}),
  });
  let lastError: unknown;
  for (const [i, source] of sources.entries()) {
    try {
      return await pullFrom(reference, { ...rest, source });
    } catch (error) {
      lastError = error;
      if (i < sources.length - 1)
        options.logger?.warn('archive pull from a registry host failed; trying the next', { error: (error as Error).message });
    } finally {
      // pullFrom closes the source it was given; closing twice is harmless.
      await source.close().catch(() => {});
    }
  }
  throw lastError;
}
