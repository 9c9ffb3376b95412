import { execFileSync } from 'node:child_process';

// Shared by metrics.spec and monitoring-docs.spec: reads Prometheus text exposition and checks it with promtool
// (Debian's prometheus package: a parser we did not write).

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

/** The samples of an exposition (comments skipped); throws on a line that is neither. */
export function parseExposition(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = SAMPLE.exec(line);
    if (!m) throw new Error(`not an exposition line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(LABEL)) labels[l[1]] = l[2].replace(/\\n/g, '\n').replace(/\\"/g, '"').replace(/\\\\/g, '\\');
    out.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return out;
}

/** Sum of the samples named `name` whose labels include `labels`. */
export function valueOf(samples: Sample[], name: string, labels: Record<string, string> = {}): number {
  return samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)).reduce((a, s) => a + s.value, 0);
}

/** Metric family names declared by `# TYPE` lines. */
export function familyNames(text: string): Set<string> {
  return new Set([...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => m[1]));
}

/** Every series name a family yields (histograms: _bucket, _sum, _count). */
export function seriesNames(text: string): Set<string> {
  const names = new Set<string>();
  for (const m of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    names.add(m[1]);
    if (m[2] === 'histogram' || m[2] === 'summary') for (const s of ['_bucket', '_sum', '_count']) names.add(m[1] + s);
  }
  return names;
}

/** `promtool check metrics` on the exposition; returns its output, throws with it when promtool refuses. */
export function promtoolCheckMetrics(text: string): string {
  try {
    return execFileSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'] });
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message: string; code?: string };
    if (e.code === 'ENOENT') throw new Error('promtool not found: install Debian\'s prometheus package (apt-get install --no-install-recommends prometheus; .ci/run does)');
    throw new Error(`promtool check metrics refused the exposition:\n${e.stdout ?? ''}${e.stderr ?? ''}`);
  }
}

/** Scrapes a metrics URL (optionally with a bearer token) and returns the text. */
export async function scrape(url: string, token?: string): Promise<string> {
  const r = await fetch(url, { headers: token ? { authorization: `Bearer ${token}` } : {} });
  if (r.status !== 200) throw new Error(`scrape ${url}: HTTP ${r.status} ${await r.text()}`);
  return r.text();
}

/** The JSON log lines of a process's output (Node's own warnings, "(node:PID) ...", are not the app's logs). */
export function logLines(output: string): { json: Record<string, unknown>[]; other: string[] } {
  const json: Record<string, unknown>[] = [];
  const other: string[] = [];
  for (const line of output.split('\n')) {
    if (!line.trim()) continue;
    try {
      const v = JSON.parse(line) as unknown;
      if (typeof v === 'object' && v !== null && !Array.isArray(v)) {
        json.push(v as Record<string, unknown>);
        continue;
      }
    } catch {
      // not JSON
    }
    other.push(line);
  }
  return { json, other };
}

const PROMQL_WORDS = new Set([
  'by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'bool', 'and', 'or', 'unless', 'offset', 'inf', 'nan',
]);

/**
 * The metric names a PromQL expression reads: identifiers that are not functions (followed by "("), keywords,
 * label names (inside {...} or by/without/on/ignoring lists), strings, durations or numbers.
 */
export function promqlMetricNames(expr: string): string[] {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ');
  const names = new Set<string>();
  for (const m of stripped.matchAll(/[a-zA-Z_:][a-zA-Z0-9_:]*/g)) {
    const after = stripped.slice((m.index ?? 0) + m[0].length);
    if (/^\s*\(/.test(after) || PROMQL_WORDS.has(m[0].toLowerCase())) continue;
    const before = stripped.slice(0, m.index ?? 0);
    if (/[0-9.]$/.test(before) || /^\$/.test(m[0]) || /\$$/.test(before)) continue;
    names.add(m[0]);
  }
  return [...names];
}
