// containerd's filter syntax for List (Walk), as the metadata layer and ctr use it:
// `field==value`, `field!=value`, `field~=regexp`, or a bare field (present); conditions joined
// by `,` must all hold; separate filters are alternatives. Fields: name, parent, kind,
// labels.<key> (key quoted when it has dots). Values may be quoted.
import { SnapshotArgumentError } from './errors.js';

export interface FilterTarget {
  name: string;
  parent: string;
  kind: string;
  labels: Readonly<Record<string, string>>;
}

type Condition = { path: string[]; op: '==' | '!=' | '~=' | 'present'; value: string };

function unquote(text: string): string {
  const t = text.trim();
  if (t.length >= 2 && ((t.startsWith('"') && t.endsWith('"')) || (t.startsWith('`') && t.endsWith('`')))) {
    return t.startsWith('"') ? (JSON.parse(t) as string) : t.slice(1, -1);
  }
  return t;
}

function splitOutsideQuotes(text: string, separator: string): string[] {
  const parts: string[] = [];
  let current = '';
  let quote: string | undefined;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i] as string;
    if (quote) {
      if (ch === '\\' && quote === '"' && i + 1 < text.length) {
        current += ch + (text[++i] as string);
        continue;
      }
      if (ch === quote) quote = undefined;
    } else if (ch === '"' || ch === '`') {
      quote = ch;
    } else if (ch === separator) {
      parts.push(current);
      current = '';
      continue;
    }
    current += ch;
  }
  if (quote) throw new SnapshotArgumentError(`unterminated quote in filter ${JSON.stringify(text)}`);
  parts.push(current);
  return parts;
}

function parseCondition(text: string): Condition {
  const match = /^((?:[^"=!~]|"(?:[^"\\]|\\.)*")+?)\s*(==|!=|~=)\s*(.*)$/.exec(text.trim());
  const field = match ? (match[1] as string) : text.trim();
  const path = splitOutsideQuotes(field.trim(), '.').map(unquote);
  if (
    path.length === 0 ||
    !path[0] ||
    !['name', 'parent', 'kind', 'labels'].includes(path[0]) ||
    (path[0] === 'labels' && path.length !== 2)
  ) {
    throw new SnapshotArgumentError(`unsupported filter field ${JSON.stringify(field)} (name, parent, kind, labels.<key>)`);
  }
  if (!match) return { path, op: 'present', value: '' };
  return { path, op: match[2] as Condition['op'], value: unquote(match[3] as string) };
}

export type Filter = (target: FilterTarget) => boolean;

/** Any of `filters` matches; no filters match everything. */
export function parseFilters(filters: readonly string[]): Filter {
  const alternatives = filters.filter((f) => f.trim() !== '').map((f) => splitOutsideQuotes(f, ',').map(parseCondition));
  if (alternatives.length === 0) return () => true;
  return (target) => alternatives.some((conditions) => conditions.every((c) => holds(c, target)));
}

function holds(condition: Condition, target: FilterTarget): boolean {
  const [field, key] = condition.path;
  const value =
    field === 'labels' ? target.labels[key as string] : field === 'kind' ? target.kind.toLowerCase() : target[field as 'name' | 'parent'];
  const expected = field === 'kind' ? condition.value.toLowerCase() : condition.value;
  switch (condition.op) {
    case 'present':
      return value !== undefined && value !== '';
    case '==':
      return value === expected;
    case '!=':
      return value !== expected;
    case '~=':
      return value !== undefined && new RegExp(expected).test(value);
  }
}
