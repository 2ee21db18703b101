// The cold-start table of issue #17: per image and link, full pull + unpack against the image
// published with a profile (the default), without one, the older clip columns, and the lower
// bound (link time of the compressed bytes the workload reads), with clip's ratio to it.
import type { ResultRow } from './model.js';

const SCENARIO = 'start + workload';
const PROFILED = 'default (profile published)';
const NO_PROFILE = 'no profile';
const LOWER_BOUND = 'lower bound';

const mb = (bytes: number | undefined) => (bytes === undefined ? '–' : `${(bytes / 1e6).toFixed(1)} MB`);

function time(row: ResultRow | undefined): string {
  if (!row) return '–';
  if (row.skipped) return 'skipped';
  if (row.clip === undefined) return '–';
  return `${row.clip.toFixed(2)} s${row.ratio === undefined ? '' : ` (${row.ratio.toFixed(1)}×)`}`;
}

function overBound(row: ResultRow | undefined, bound: ResultRow | undefined): string {
  if (!row || row.skipped || !bound || bound.skipped || row.clip === undefined || row.clipBytes === undefined) return '–';
  if (!bound.clipBytes || !bound.clip) return '–';
  return `${(row.clipBytes / bound.clipBytes).toFixed(2)}× / ${(row.clip / bound.clip).toFixed(1)}×`;
}

/** Markdown, or '' when the run has no start rows. */
export function coldStartTable(rows: readonly ResultRow[]): string {
  const start = rows.filter((row) => row.scenario === SCENARIO);
  const groups = [...new Set(start.map((row) => `${row.image}\t${row.profile}`))];
  if (groups.length === 0) return '';
  const lines = [
    '| image | link | full pull + unpack | default (profile published) | no profile | cold cache, local archive | hand-recorded list | lower bound | floor: warm cache + lower bound | bytes: full / default / no profile / cold / lower bound | default ÷ lower bound (bytes / time) | no profile ÷ lower bound (bytes / time) |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|',
  ];
  for (const group of groups) {
    const [image, profile] = group.split('\t') as [string, string];
    const pick = (variant: string) => start.find((row) => row.image === image && row.profile === profile && row.variant === variant);
    const anyRow = start.find((row) => row.image === image && row.profile === profile && row.baseline !== undefined);
    const bound = pick(LOWER_BOUND);
    const profiled = pick(PROFILED);
    const noProfile = pick(NO_PROFILE);
    const cold = pick('cold cache');
    const warm = pick('warm cache');
    const floor =
      bound?.clip !== undefined && !bound.skipped && warm?.clip !== undefined && !warm.skipped ? bound.clip + warm.clip : undefined;
    const floorCell =
      floor === undefined ? '–' : `${floor.toFixed(2)} s${anyRow?.baseline ? ` (${(anyRow.baseline / floor).toFixed(1)}×)` : ''}`;
    const bytes = [anyRow?.baselineBytes, profiled?.clipBytes, noProfile?.clipBytes, cold?.clipBytes, bound?.clipBytes].map(mb).join(' / ');
    lines.push(
      `| ${image} | ${profile} | ${anyRow?.baseline === undefined ? '–' : `${anyRow.baseline.toFixed(2)} s`} | ${time(profiled)} | ${time(noProfile)} | ${time(cold)} | ${time(pick('prefetch (recorded list)'))} | ${time(bound)} | ${floorCell} | ${bytes} | ${overBound(profiled, bound)} | ${overBound(noProfile, bound)} |`,
    );
  }
  const skipped = start.filter((row) => row.skipped && [PROFILED, NO_PROFILE, LOWER_BOUND].includes(row.variant));
  const reasons = [...new Set(skipped.map((row) => `${row.variant}: ${row.skipped!.split('\n')[0]}`))];
  return [
    "(time (× faster than full pull + unpack). The lower bound's time is the link time of the compressed bytes the workload reads (bytes / rate + 1 RTT); the floor adds the warm-cache start (the same start with every byte local: process start, FUSE, the workload's own CPU), a practical best for a lazy start on this machine and link)",
    '',
    ...lines,
    ...(reasons.length ? ['', ...reasons.map((reason) => `- skipped ${reason.replaceAll('|', '\\|')}`)] : []),
  ].join('\n');
}
