// The result document (bench/results/<date>.json) and its Markdown rendering.
import type { LinkCheck } from '../net/verify.js';
import { coldStartTable } from './cold-start-table.js';
import type { MachineFacts } from './machine.js';
import type { ResultRow } from './model.js';

export interface ImageSummary {
  name: string;
  description: string;
  workload: string;
  layers: number;
  compressedBytes: number;
  uncompressedBytes: number;
  archiveBytes?: number;
  /** archiveBytes as a percentage of uncompressedBytes (goal ≤ 0.5%). */
  archivePercentOfUncompressed?: number;
  indexSkipped?: string;
}

export interface BenchResults {
  version: 1;
  date: string;
  mode: 'quick' | 'full';
  command: string;
  machine: MachineFacts;
  profiles: string[];
  linkChecks: LinkCheck[];
  shaping: string[];
  images: ImageSummary[];
  rows: ResultRow[];
  durationSeconds: number;
}

const MB = 1e6;

function num(value: number | undefined, digits = 2): string {
  if (value === undefined || !Number.isFinite(value)) return '–';
  return value >= 100 ? value.toFixed(0) : value.toFixed(digits);
}

function bytes(value: number | undefined): string {
  return value === undefined ? '–' : `${(value / MB).toFixed(1)} MB`;
}

const cell = (text: string) => text.replaceAll('|', '\\|');

/** Skip reasons go in full into the JSON; the table gets the first line, cut short. */
function shorten(reason: string): string {
  const line = reason.split('\n')[0]!.replaceAll('|', '\\|');
  return line.length > 140 ? `${line.slice(0, 140)}…` : line;
}

export function markdownTable(rows: ResultRow[]): string {
  const lines = [
    '| scenario | image | link | baseline | baseline value | clip | ratio | bytes baseline → clip | clip range reqs | note |',
    '|---|---|---|---|---|---|---|---|---|---|',
  ];
  for (const row of rows) {
    const clip = row.skipped ? `skipped: ${shorten(row.skipped)}` : `${num(row.clip)} ${row.unit}`;
    const ratio = row.ratio === undefined ? '–' : `${row.ratio.toFixed(2)}×`;
    const moved =
      row.baselineBytes === undefined && row.clipBytes === undefined ? '–' : `${bytes(row.baselineBytes)} → ${bytes(row.clipBytes)}`;
    lines.push(
      `| ${cell(`${row.scenario}: ${row.variant}`)} | ${row.image} | ${row.profile} | ${cell(row.baselineLabel)} | ${num(row.baseline)} ${row.unit} | ${clip} | ${ratio} | ${moved} | ${row.clipRangeRequests ?? '–'} | ${row.note ? cell(row.note) : ''} |`,
    );
  }
  return lines.join('\n');
}

export function markdownReport(results: BenchResults): string {
  const m = results.machine;
  const out = [
    `# clip benchmark — ${results.date} (${results.mode})`,
    '',
    `Reproduce: \`${results.command}\``,
    '',
    `Machine: ${m.cores} cores (${m.cpuModel}), ${(m.memoryBytes / 2 ** 30).toFixed(1)} GiB, kernel ${m.kernel}, node ${m.node}${m.loadAverage ? `, load average at start ${m.loadAverage}` : ''}. Run took ${results.durationSeconds.toFixed(0)} s.`,
    '',
    'Ratio = how many times better clip is than the baseline measured in the same run on the same link (time: baseline/clip; throughput: clip/baseline). Bytes = what crossed the emulated link (proxy counters).',
    '',
    '## Link check',
    '',
    '| profile | configured | measured download | configured RTT | measured request time |',
    '|---|---|---|---|---|',
    ...results.linkChecks.map(
      (check) =>
        `| ${check.profile} | ${check.configuredMbit === undefined ? 'unlimited' : `${check.configuredMbit} Mbit/s`} | ${check.measuredMbit.toFixed(0)} Mbit/s | ${check.configuredRttMs} ms | ${check.measuredRequestMs.toFixed(1)} ms |`,
    ),
    '',
    '## Images',
    '',
    '| image | description | layers | compressed | uncompressed | .clip archive | archive % of uncompressed (goal ≤ 0.5%) |',
    '|---|---|---|---|---|---|---|',
    ...results.images.map(
      (image) =>
        `| ${image.name} | ${image.description} (workload: ${image.workload}) | ${image.layers} | ${bytes(image.compressedBytes)} | ${bytes(image.uncompressedBytes)} | ${image.archiveBytes === undefined ? `– ${image.indexSkipped ? `(${image.indexSkipped})` : ''}` : bytes(image.archiveBytes)} | ${image.archivePercentOfUncompressed === undefined ? '–' : `${image.archivePercentOfUncompressed.toFixed(2)}%`} |`,
    ),
    '',
    ...(coldStartTable(results.rows) ? ['## Cold start vs the lower bound', '', coldStartTable(results.rows), ''] : []),
    '## Results',
    '',
    markdownTable(results.rows),
    '',
  ];
  return out.join('\n');
}
