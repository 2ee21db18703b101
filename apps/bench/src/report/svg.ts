// Hand-rolled grouped bar charts as standalone SVG (no dependencies).
export interface BarGroup {
  label: string;
  values: (number | undefined)[];
}

export interface BarChart {
  title: string;
  unit: string;
  series: string[];
  groups: BarGroup[];
}

const COLORS = ['#8c8c8c', '#1f77b4', '#2ca02c', '#ff7f0e', '#9467bd', '#d62728'];

function escapeXml(text: string): string {
  return text.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;').replaceAll('"', '&quot;');
}

function niceMax(value: number): number {
  if (!(value > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 2.5, 5, 10]) if (step * power >= value) return step * power;
  return 10 * power;
}

function format(value: number): string {
  return value >= 100 ? value.toFixed(0) : value >= 10 ? value.toFixed(1) : value.toFixed(2);
}

export function barChartSvg(chart: BarChart): string {
  const barWidth = 22;
  const gap = 26;
  const left = 60;
  const top = 40;
  const plotHeight = 220;
  const groupWidth = chart.series.length * barWidth + gap;
  const width = Math.max(360, left + chart.groups.length * groupWidth + 20);
  const height = top + plotHeight + 40 + 18 * chart.series.length;
  const max = niceMax(
    Math.max(0, ...chart.groups.flatMap((group) => group.values.filter((v): v is number => v !== undefined && Number.isFinite(v)))),
  );
  const y = (value: number) => Math.round((top + plotHeight - (value / max) * plotHeight) * 10) / 10;
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="11">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="${width / 2}" y="20" text-anchor="middle" font-size="14" font-weight="bold">${escapeXml(chart.title)}</text>`,
  ];
  for (let i = 0; i <= 4; i++) {
    const value = (max * i) / 4;
    parts.push(`<line x1="${left}" x2="${width - 10}" y1="${y(value)}" y2="${y(value)}" stroke="#ddd"/>`);
    parts.push(`<text x="${left - 6}" y="${y(value) + 4}" text-anchor="end">${escapeXml(format(value))}</text>`);
  }
  parts.push(
    `<text x="14" y="${top + plotHeight / 2}" transform="rotate(-90 14 ${top + plotHeight / 2})" text-anchor="middle">${escapeXml(chart.unit)}</text>`,
  );
  chart.groups.forEach((group, g) => {
    const x0 = left + gap / 2 + g * groupWidth;
    group.values.forEach((value, s) => {
      if (value === undefined || !Number.isFinite(value)) return;
      const x = x0 + s * barWidth;
      parts.push(
        `<rect x="${x}" y="${y(value)}" width="${barWidth - 3}" height="${Math.max(0, top + plotHeight - y(value))}" fill="${COLORS[s % COLORS.length]}"><title>${escapeXml(`${chart.series[s]}: ${format(value)} ${chart.unit}`)}</title></rect>`,
      );
      parts.push(
        `<text x="${x + (barWidth - 3) / 2}" y="${y(value) - 3}" text-anchor="middle" font-size="9">${escapeXml(format(value))}</text>`,
      );
    });
    parts.push(
      `<text x="${x0 + (chart.series.length * barWidth) / 2}" y="${top + plotHeight + 16}" text-anchor="middle">${escapeXml(group.label)}</text>`,
    );
  });
  chart.series.forEach((name, s) => {
    const x = left;
    const yy = top + plotHeight + 40 + s * 18;
    parts.push(
      `<rect x="${x}" y="${yy - 10}" width="12" height="12" fill="${COLORS[s % COLORS.length]}"/><text x="${x + 16}" y="${yy}">${escapeXml(name)}</text>`,
    );
  });
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}
