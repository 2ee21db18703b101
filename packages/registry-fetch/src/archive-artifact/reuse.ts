// `clip index <registry ref>` of an image that already has a published archive: say so, and
// with --reuse take that archive instead of indexing again.
import { copyFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { isClipError, type Logger, makeDirectories, parseImageReference } from '@clip/shared';
import type { Platform } from '../image-source.js';
import type { PullArchiveResult } from './pull.js';

export interface ReuseOptions {
  output: string;
  reuse: boolean;
  logger: Logger;
  platform?: Platform;
  insecure?: boolean;
  /** The archive download (not the lookup) goes through hosts.toml mirrors. */
  hostsDir?: string;
}

/**
 * For a registry source with a published archive: logs it, and with `reuse` downloads it to
 * `output` and returns the result (the caller then skips indexing). Returns undefined to index
 * as usual; a failed lookup is only a warning, since indexing reports registry errors itself.
 */
export async function reusePublishedArchive(sourceText: string, options: ReuseOptions): Promise<PullArchiveResult | undefined> {
  let ref;
  try {
    ref = parseImageReference(sourceText);
  } catch {
    return undefined;
  }
  if (ref.kind !== 'registry') return undefined;
  // The registry client (undici) is loaded only for registry sources: local layouts skip it.
  const { RegistrySource } = await import('../registry-source.js');
  const { findPublishedArchive, pullArchive } = await import('./pull.js');
  const source = new RegistrySource(ref, { logger: options.logger, ...(options.insecure ? { insecure: true } : {}) });
  let found;
  try {
    const image = await source.resolve(options.platform ? { platform: options.platform } : {});
    found = await findPublishedArchive(source, image.manifestDigest, options.logger);
    if (!found) return undefined;
    options.logger.info(
      options.reuse
        ? 'image already has a published archive; reusing it'
        : 'image already has a published archive (pass --reuse to take it instead of indexing)',
      {
        reference: source.reference,
        manifest_digest: image.manifestDigest,
        artifact: found.artifact.digest,
      },
    );
  } catch (error) {
    if (!isClipError(error)) throw error;
    options.logger.warn('could not look for a published archive', { reference: source.reference, error: error.message });
    return undefined;
  } finally {
    await source.close();
  }
  if (!options.reuse) return undefined;
  let pulled;
  try {
    pulled = await pullArchive(sourceText, {
      logger: options.logger,
      ...(options.platform ? { platform: options.platform } : {}),
      ...(options.insecure ? { insecure: true } : {}),
      ...(options.hostsDir ? { hostsDir: options.hostsDir } : {}),
    });
  } catch (error) {
    // Unbound or failing a check (archive-trust): index the image ourselves instead.
    if (!isClipError(error)) throw error;
    options.logger.warn('not reusing the published archive; indexing instead', { reference: sourceText, error: error.message });
    return undefined;
  }
  await makeDirectories(dirname(options.output));
  await copyFile(pulled.path, options.output);
  return { ...pulled, output: options.output };
}
