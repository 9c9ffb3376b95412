import { X509Certificate } from 'node:crypto';
import { CliError, Exit } from './errors';

/** How a result is printed: a table for people (default), JSON for scripts, or a certificate as PEM/DER. */
export type OutputMode = 'table' | 'json' | 'pem' | 'der';

const MODES: readonly OutputMode[] = ['table', 'json', 'pem', 'der'];

/** `--output MODE` wins over `--json`; nothing given: a table. */
export function outputMode(output: unknown, json: unknown): OutputMode {
  if (output === undefined) return json ? 'json' : 'table';
  const mode = String(output).toLowerCase() as OutputMode;
  if (!MODES.includes(mode)) throw new CliError('--output must be table, json, pem or der', Exit.Usage);
  if (json && mode !== 'json') throw new CliError('--json and --output ' + mode + ' contradict each other', Exit.Usage);
  return mode;
}

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;
const MAX_CELL = 72;

/** The certificates (PEM) a result carries, leaf first: `certificate`, then `chain` (without repeating it). */
export function certificatesOf(result: unknown): string[] {
  if (typeof result !== 'object' || result === null) return [];
  const r = result as Record<string, unknown>;
  const pems: string[] = [];
  if (typeof r['certificate'] === 'string') pems.push(...(r['certificate'].match(PEM_CERT) ?? []));
  if (Array.isArray(r['chain'])) {
    for (const c of r['chain']) if (typeof c === 'string') pems.push(...(c.match(PEM_CERT) ?? []));
  }
  return [...new Set(pems.map((p) => p.trim()))];
}

/**
 * `--output pem`: the result's certificate and its chain, leaf first, as a PEM bundle; `--output der`: the
 * leaf certificate alone (DER holds one certificate). Refused for a result without a certificate.
 */
export function certificateOutput(result: unknown, mode: 'pem' | 'der'): Buffer {
  const pems = certificatesOf(result);
  if (pems.length === 0) throw new CliError(`--output ${mode} is for commands that return a certificate (cert issue, keys show)`, Exit.Usage);
  if (mode === 'der') return Buffer.from(new X509Certificate(pems[0]).raw);
  return Buffer.from(pems.map((p) => `${p}\n`).join(''));
}

/** One line for a PEM certificate: its subject (a table shows no PEM; --output pem does). */
function pemSummary(value: string): string | undefined {
  const pems = value.match(PEM_CERT);
  if (!pems) return undefined;
  try {
    const subject = new X509Certificate(pems[0]).subject.replace(/\n/g, ', ');
    return pems.length === 1 ? `certificate ${subject}` : `${pems.length} certificates, first ${subject}`;
  } catch {
    return `${pems.length} PEM block(s)`;
  }
}

/** Terminal-safe text: control characters (escape sequences, newlines, bidi overrides) shown, not obeyed. */
function safe(s: string): string {
  // eslint-disable-next-line no-control-regex
  return s.replace(/[\u0000-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

function cell(value: unknown): string {
  if (value === null || value === undefined) return '-';
  if (typeof value === 'string') {
    const text = pemSummary(value) ?? safe(value);
    return text.length > MAX_CELL ? `${text.slice(0, MAX_CELL - 1)}…` : text;
  }
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (Array.isArray(value)) {
    if (value.length > 0 && value.every((v) => typeof v === 'string' && v.includes('-----BEGIN CERTIFICATE-----'))) {
      return `${value.length} certificate(s)`;
    }
    if (value.every((v) => typeof v !== 'object' || v === null)) return cell(value.map((v) => String(v)).join(', '));
    return `${value.length} item(s)`;
  }
  return cell(JSON.stringify(value));
}

const isScalar = (v: unknown): boolean => v === null || ['string', 'number', 'boolean'].includes(typeof v);
const isRecordArray = (v: unknown): v is Record<string, unknown>[] =>
  Array.isArray(v) && v.length > 0 && v.every((x) => typeof x === 'object' && x !== null && !Array.isArray(x));

/** Rows under a header, columns padded to their widest cell. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]))).join('  ').trimEnd();
  return [line(header.map((h) => h.toUpperCase())), ...rows.map(line)].join('\n');
}

/** A list of records: one row each, the columns every record has with a scalar (or short list) value. */
function listTable(items: Record<string, unknown>[]): string {
  const columns = Object.keys(items[0]).filter((k) => items.some((i) => i[k] !== undefined) && items.every((i) => isScalar(i[k]) || i[k] === undefined || Array.isArray(i[k])));
  // PEM columns say nothing in a list: `keys show KEYID --output pem` gives one.
  const shown = columns.filter((k) => !items.some((i) => typeof i[k] === 'string' && (i[k] as string).includes('-----BEGIN')));
  return table(shown, items.map((i) => shown.map((k) => cell(i[k]))));
}

/** A human-readable rendering of any command's result (what `--json` prints, as tables). */
export function renderTable(result: unknown): string {
  if (result === undefined) return '';
  if (isRecordArray(result)) return listTable(result);
  if (Array.isArray(result)) return result.length === 0 ? '(none)' : result.map((x) => cell(x)).join('\n');
  if (typeof result !== 'object' || result === null) return cell(result);
  const r = result as Record<string, unknown>;
  const fields: string[][] = [];
  const sections: string[] = [];
  for (const [k, v] of Object.entries(r)) {
    if (isRecordArray(v)) sections.push(`${k}:\n${listTable(v)}`);
    else if (Array.isArray(v) && v.length === 0 && k === 'items') sections.push(`${k}: (none)`);
    else if (typeof v === 'object' && v !== null && !Array.isArray(v)) {
      for (const [k2, v2] of Object.entries(v as Record<string, unknown>)) fields.push([`${k}.${k2}`, cell(v2)]);
    } else fields.push([k, cell(v)]);
  }
  const width = Math.max(0, ...fields.map(([k]) => k.length));
  const head = fields.map(([k, v]) => `${k.padEnd(width)}  ${v}`).join('\n');
  return [head, ...sections].filter(Boolean).join('\n\n');
}
