// `clip archive <dir | rootfs.tar> -o <file.clip>`: a data-carrying archive (format v2.1)
// that holds the file contents itself, for images that live in no registry. Serve it with
// `clip mount` from a local file or an http(s) URL.
import type { Command } from 'commander';
import type { DataArchiveSummary } from '@clip/indexer';
import { createLogger, formatSize, parseSize } from '@clip/shared';

interface ArchiveOptions {
  output: string;
  blockSize: string;
  xattrs: boolean;
  json?: boolean;
}

export function formatArchiveSummary(summary: DataArchiveSummary): string {
  return (
    `wrote ${summary.output}: ${summary.files} files (${summary.entries} names, ${summary.inodes} inodes), ` +
    `${formatSize(summary.uncompressedBytes)} of contents in ${summary.blocks} blocks (${formatSize(summary.dataBytes)} compressed), ` +
    `archive ${formatSize(summary.archiveBytes)}\n`
  );
}

export function register(program: Command): void {
  program
    .command('archive')
    .description('write a .clip that carries the file contents itself (from a directory or a rootfs tar)')
    .argument('<input>', 'directory, or rootfs tar (plain or gzip)')
    .requiredOption('-o, --output <file>', 'the .clip file to write (atomically)')
    .option('--block-size <size>', 'uncompressed bytes per independently readable block', '1MiB')
    .option('--no-xattrs', 'do not read extended attributes of a directory input')
    .option('--json', 'print the summary as JSON on stdout')
    .action(async (input: string, options: ArchiveOptions) => {
      const { createDataArchive } = await import('@clip/indexer');
      const summary = await createDataArchive({
        input,
        output: options.output,
        blockSize: parseSize(options.blockSize),
        xattrs: options.xattrs,
        logger: createLogger(),
      });
      process.stdout.write(options.json ? `${JSON.stringify(summary)}\n` : formatArchiveSummary(summary));
    });
}
