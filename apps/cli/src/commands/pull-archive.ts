// `clip pull-archive <registry/repo:tag> [-o file.clip]`: what a runtime worker does before
// mounting — find the archive published for the image, download and verify it, cache it.
import type { Command } from 'commander';
import { createLogger, formatSize } from '@clip/shared';
import { parsePlatform } from '@clip/registry-fetch';

interface PullArchiveOptions {
  output?: string;
  cacheDir?: string;
  platform?: string;
  insecure?: boolean;
  refresh?: boolean;
  json?: boolean;
}

export function register(program: Command): void {
  program
    .command('pull-archive')
    .description("download the .clip archive published for an image (referrers API or fallback tag), verified and cached")
    .argument('<image>', 'registry reference, e.g. 127.0.0.1:5000/app:v1')
    .option('-o, --output <file.clip>', 'copy the archive here (it is always kept in the cache)')
    // biome-ignore lint/suspicious/noTemplateCurlyInString: shell syntax shown in the help text
    .option('--cache-dir <dir>', 'archive cache (default $CLIP_ARCHIVE_CACHE or ${XDG_CACHE_HOME:-~/.cache}/clip/archives)')
    .option('--platform <os/arch[/variant]>', 'platform to pick from an image index (default: this machine)')
    .option('--refresh', 'download again even if the cache has it')
    .option('--insecure', 'allow plain HTTP / unverified TLS to a non-loopback registry')
    .option('--json', 'print the result as JSON on stdout')
    .action(async (image: string, options: PullArchiveOptions) => {
      const { pullArchive } = await import('@clip/registry-fetch');
      const result = await pullArchive(image, {
        logger: createLogger(),
        ...(options.output ? { output: options.output } : {}),
        ...(options.cacheDir ? { cacheDir: options.cacheDir } : {}),
        ...(options.platform ? { platform: parsePlatform(options.platform) } : {}),
        ...(options.insecure ? { insecure: true } : {}),
        ...(options.refresh ? { refresh: true } : {}),
      });
      if (options.json) {
        process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
        return;
      }
      process.stdout.write(
        `${result.cached ? 'cached' : 'downloaded'} archive of ${result.reference}@${result.manifestDigest} ` +
          `(${formatSize(result.archiveBytes)}${result.via ? `, found via ${result.via === 'api' ? 'the referrers API' : 'the referrers tag'}` : ''}): ` +
          `${result.output ?? result.path}\n`,
      );
    });
}
