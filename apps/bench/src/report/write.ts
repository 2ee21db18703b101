// Writes bench/results/<date>.{json,md} and the SVG charts.
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ResultRow } from './model.js';
import { markdownReport, type BenchResults } from './results.js';
import { barChartSvg } from './svg.js';

export function coldStartChart(results: BenchResults, image: string): string {
  const rows = results.rows.filter((row) => row.scenario === 'start + workload' && row.image === image);
  const profiles = [...new Set(rows.map((row) => row.profile))];
  const pick = (profile: string, variant: string) => rows.find((row) => row.profile === profile && row.variant === variant);
  return barChartSvg({
    title: `Start + workload, ${image}, by link profile`,
    unit: 'seconds',
    series: [
      'full pull + unpack',
      'clip default (profile published)',
      'clip no profile',
      'clip cold cache',
      'clip warm cache',
      'lower bound',
    ],
    groups: profiles.map((profile) => ({
      label: profile,
      values: [
        pick(profile, 'cold cache')?.baseline,
        pick(profile, 'default (profile published)')?.clip,
        pick(profile, 'no profile')?.clip,
        pick(profile, 'cold cache')?.clip,
        pick(profile, 'warm cache')?.clip,
        pick(profile, 'lower bound')?.clip,
      ],
    })),
  });
}

export function bytesChart(results: BenchResults): string {
  const pick = (image: string, variant = 'cold cache'): ResultRow | undefined =>
    results.rows.find((row) => row.scenario === 'start + workload' && row.variant === variant && row.image === image);
  const cold = (image: string) => pick(image);
  return barChartSvg({
    title: 'Bytes fetched at start vs image size',
    unit: 'MB',
    series: [
      'image (compressed)',
      'full pull',
      'clip cold start',
      'clip default (profile published)',
      'lower bound',
      'image (uncompressed)',
    ],
    groups: results.images.map((image) => ({
      label: image.name,
      values: [
        image.compressedBytes / 1e6,
        (cold(image.name)?.baselineBytes ?? Number.NaN) / 1e6,
        (cold(image.name)?.clipBytes ?? Number.NaN) / 1e6,
        (pick(image.name, 'default (profile published)')?.clipBytes ?? Number.NaN) / 1e6,
        (pick(image.name, 'lower bound')?.clipBytes ?? Number.NaN) / 1e6,
        image.uncompressedBytes / 1e6,
      ],
    })),
  });
}

/** The scale scenario's fixed workload: bytes over the link vs image size (files). */
export function scaleBytesChart(results: BenchResults): string | undefined {
  const rows = results.rows.filter((row) => row.scenario === 'scale' && row.variant.startsWith('cold start') && row.skipped === undefined);
  if (rows.length === 0) return undefined;
  const archive = (row: ResultRow) => Number(row.details?.['archiveBytes'] ?? Number.NaN);
  return barChartSvg({
    title: 'Read one small file: bytes fetched vs image size',
    unit: 'MB',
    series: ['full pull (layer)', 'clip mount + read', '.clip archive (local)'],
    groups: rows.map((row) => ({
      label: row.image,
      values: [(row.baselineBytes ?? Number.NaN) / 1e6, (row.clipBytes ?? Number.NaN) / 1e6, archive(row) / 1e6],
    })),
  });
}

export async function writeResults(outDir: string, results: BenchResults): Promise<{ json: string; md: string; charts: string[] }> {
  await mkdir(outDir, { recursive: true });
  const stem = results.date.replaceAll(':', '-');
  const json = join(outDir, `${stem}.json`);
  const md = join(outDir, `${stem}.md`);
  const charts: string[] = [];
  const headline = results.images.find((image) =>
    results.rows.some((row) => row.image === image.name && row.scenario === 'start + workload'),
  );
  let markdown = markdownReport(results);
  if (headline) {
    const file = join(outDir, `${stem}-cold-start.svg`);
    await writeFile(file, coldStartChart(results, headline.name));
    charts.push(file);
  }
  const bytesFile = join(outDir, `${stem}-bytes.svg`);
  await writeFile(bytesFile, bytesChart(results));
  charts.push(bytesFile);
  const scale = scaleBytesChart(results);
  if (scale) {
    const file = join(outDir, `${stem}-scale-bytes.svg`);
    await writeFile(file, scale);
    charts.push(file);
  }
  markdown += `\n## Charts\n\n${charts.map((file) => `![${file.split('/').at(-1)}](${file.split('/').at(-1)})`).join('\n\n')}\n`;
  await writeFile(json, `${JSON.stringify(results, null, 2)}\n`);
  await writeFile(md, markdown);
  return { json, md, charts };
}
