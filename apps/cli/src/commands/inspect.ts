// `clip inspect <file.clip> [--json]`: what an archive holds and where its layers live.
import type { Command } from 'commander';
import type { ArchiveMetadata, ClipArchive, FileType } from '@clip/archive-format';
import { formatSize, redactUserinfo } from '@clip/shared';
import { openArchiveTables } from '../archive-argument.js';
import { addTrustOptions, type TrustFlags } from '../archive-trust/cli-options.js';
import { HOSTS_DIR_HELP } from '../hosts-option.js';
import { describeProfile, type ProfileReport } from '../profile-report.js';

export interface ArchiveReport {
  file: string;
  formatVersion: number;
  /** `2.0`, `2.1`... */
  version: string;
  /** 'oci': an index of OCI layers in a registry; 'data': the archive carries the file contents. */
  mode: 'oci' | 'data';
  archiveBytes: number;
  metadata: ArchiveMetadata;
  layers: Array<{
    digest: string;
    diffId: string;
    mediaType: string;
    compression: string;
    compressedSize: number;
    uncompressedSize: number;
    spans: number;
  }>;
  /**
   * Where the checkpoint windows are: in the archive, or (v2.3, as `clip publish` pushes it) in
   * a separate blob of the storage repository, fetched by range with the spans that need them.
   */
  windows: { location: 'inline' } | { location: 'external'; digest: string; bytes: number; count: number };
  /** Names by type (a file with two hardlinked names counts twice), plus inode and name totals. */
  counts: Record<FileType, number> & { inodes: number; entries: number };
  /** The access profile published with the archive (kept next to it), when there is one. */
  profile?: ProfileReport;
}

export function describeArchive(file: string, archive: ClipArchive, archiveBytes: number): ArchiveReport {
  const counts: ArchiveReport['counts'] = {
    file: 0,
    directory: 0,
    symlink: 0,
    char: 0,
    block: 0,
    fifo: 0,
    socket: 0,
    inodes: archive.inodeCount,
    entries: archive.entryCount,
  };
  for (const { inode } of archive.walk()) counts[inode.type]++;
  return {
    // An archive URL typed with userinfo (https://user:PASS@host/…) is printed without the secret.
    file: redactUserinfo(file),
    formatVersion: archive.formatVersion,
    version: `${archive.formatVersion}.${archive.minorVersion ?? 0}`,
    mode: archive.dataSection ? 'data' : 'oci',
    archiveBytes,
    metadata: archive.metadata,
    layers: archive.layers.map((layer) => ({
      digest: layer.digest,
      diffId: layer.diffId,
      mediaType: layer.mediaType,
      compression: layer.compression,
      compressedSize: layer.compressedSize,
      uncompressedSize: layer.uncompressedSize,
      spans: layer.spans.length,
    })),
    windows: archive.externalWindows
      ? {
          location: 'external',
          digest: archive.externalWindows.digest,
          bytes: archive.externalWindows.size,
          count: archive.layers.reduce((sum, layer) => sum + layer.spans.filter((span) => span.checkpoint.externalWindow).length, 0),
        }
      : { location: 'inline' },
    counts,
  };
}

function storageText(metadata: ArchiveMetadata): string {
  const storage = metadata.storage;
  if (!storage) return '(none: data carried in the archive)';
  return `${storage.registry}/${storage.repository}${storage.tag ? `:${storage.tag}` : ''}`;
}

function table(rows: string[][]): string[] {
  const widths = rows[0]!.map((_, column) => Math.max(...rows.map((row) => row[column]!.length)));
  return rows.map((row) =>
    row
      .map((cell, column) => (column === row.length - 1 ? cell : cell.padEnd(widths[column]!)))
      .join('  ')
      .trimEnd(),
  );
}

export function formatReport(report: ArchiveReport): string {
  const { metadata } = report;
  const config = metadata.imageConfig;
  const platform = metadata.platform
    ? `${metadata.platform.os}/${metadata.platform.architecture}${metadata.platform.variant ? `/${metadata.platform.variant}` : ''}`
    : '(unknown)';
  const lines = table([
    ['archive', `${report.file} (${formatSize(report.archiveBytes)}, format v${report.version})`],
    ['mode', report.mode === 'data' ? 'data-carrying (file contents in the archive)' : 'OCI index (file contents in registry layers)'],
    ['source', metadata.sourceRef],
    ['storage', storageText(metadata)],
    [
      'windows',
      report.windows.location === 'external'
        ? `external: ${report.windows.count} in blob ${report.windows.digest} (${formatSize(report.windows.bytes)}, fetched by range)`
        : 'inline (in the archive)',
    ],
    ['manifest', metadata.storage?.manifestDigest ?? '(none)'],
    [
      'profile',
      report.profile
        ? `${report.profile.digest} (${formatSize(report.profile.bytes)}, ${report.profile.files} files, ${formatSize(report.profile.listedBytes)} of file data to prefetch)`
        : '(none)',
    ],
    ['platform', platform],
    ['created by', metadata.createdBy],
    ['entrypoint', config.entrypoint ? JSON.stringify(config.entrypoint) : '(none)'],
    ['cmd', config.cmd ? JSON.stringify(config.cmd) : '(none)'],
    ['workdir', config.workingDir || '(none)'],
    ['user', config.user || '(none)'],
    ...(config.env ?? []).map((value, index) => [index === 0 ? 'env' : '', value]),
    ...Object.entries(config.labels ?? {}).map(([key, value], index) => [index === 0 ? 'labels' : '', `${key}=${value}`]),
  ]);
  const c = report.counts;
  lines.push(
    '',
    `files ${c.file}, directories ${c.directory}, symlinks ${c.symlink}, devices ${c.char + c.block}, fifos ${c.fifo}, sockets ${c.socket} (${c.entries + 1} names, ${c.inodes} inodes)`,
    '',
  );
  const layerRows = [['#', 'DIGEST', 'COMPRESSION', 'COMPRESSED', 'UNCOMPRESSED', 'SPANS']];
  for (const [index, layer] of report.layers.entries()) {
    layerRows.push([
      String(index),
      layer.digest,
      layer.compression,
      formatSize(layer.compressedSize),
      formatSize(layer.uncompressedSize),
      String(layer.spans),
    ]);
  }
  lines.push(...table(layerRows));
  return `${lines.join('\n')}\n`;
}

export function register(program: Command): void {
  const command = program
    .command('inspect')
    .description('show what a .clip archive holds: references, image config, layers, counts')
    .argument('<archive>', 'the .clip file (or an http(s) URL), or a registry reference (its archive is loaded as by mount)')
    .option('--json', 'print one JSON object instead of text')
    .option('--insecure', 'allow plain HTTP / unverified TLS to a non-loopback registry')
    .option('--hosts-dir <dir>', HOSTS_DIR_HELP);
  addTrustOptions(command).action(async (file: string, options: { json?: boolean; insecure?: boolean; hostsDir?: string } & TrustFlags) => {
    const { location, archive } = await openArchiveTables(file, options);
    const report = describeArchive(file, archive, archive.byteLength);
    const profile = /^https?:\/\//i.test(location) ? undefined : await describeProfile(location, archive);
    if (profile) report.profile = profile;
    process.stdout.write(options.json ? `${JSON.stringify(report, null, 2)}\n` : formatReport(report));
  });
}
