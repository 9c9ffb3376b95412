import { X509Certificate } from 'node:crypto';
import { hasHiddenCharacters, jsonWithVisibleText, visibleText } from '@keyserver/api-contract/visible-text';
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

/** The note under a table whose text held characters shown as escapes (ADR 0047). */
export const HIDDEN_NOTE = '! text above holds hidden or control characters, shown as \\u{...}: it is not what it looks like elsewhere';

/**
 * One rendering: every text, names included, goes through {@link Rendering.text}, the one place that makes
 * server text terminal-safe (escape sequences, CR, newlines, bidi and zero-width characters shown, not obeyed).
 */
class Rendering {
  hidden = false;

  text(s: string): string {
    if (!hasHiddenCharacters(s)) return s;
    this.hidden = true;
    return visibleText(s);
  }

  /** A cell; `max` cuts it (list rows), a detail field is shown whole. */
  cell(value: unknown, max = Infinity): string {
    if (value === null || value === undefined) return '-';
    if (typeof value === 'string') {
      const text = this.text(pemSummary(value) ?? value);
      return text.length > max ? `${text.slice(0, max - 1)}…` : text;
    }
    if (typeof value === 'number' || typeof value === 'boolean') return String(value);
    if (Array.isArray(value)) {
      if (value.length > 0 && value.every((v) => typeof v === 'string' && v.includes('-----BEGIN CERTIFICATE-----'))) {
        return `${value.length} certificate(s)`;
      }
      if (value.every((v) => typeof v !== 'object' || v === null)) return this.cell(value.map((v) => String(v)).join(', '), max);
      return `${value.length} item(s)`;
    }
    return this.cell(JSON.stringify(value), max);
  }

  /** A list of records: one row each, the columns every record has with a scalar (or short list) value. */
  list(items: Record<string, unknown>[]): string {
    const columns = Object.keys(items[0]).filter((k) => items.some((i) => i[k] !== undefined) && items.every((i) => isScalar(i[k]) || i[k] === undefined || Array.isArray(i[k])));
    // PEM columns say nothing in a list: `keys show KEYID --output pem` gives one.
    const shown = columns.filter((k) => !items.some((i) => typeof i[k] === 'string' && (i[k] as string).includes('-----BEGIN')));
    return table(
      shown.map((h) => this.text(h.toUpperCase())),
      items.map((i) => shown.map((k) => this.cell(i[k], MAX_CELL))),
    );
  }
}

const isScalar = (v: unknown): boolean => v === null || ['string', 'number', 'boolean'].includes(typeof v);
const isRecordArray = (v: unknown): v is Record<string, unknown>[] =>
  Array.isArray(v) && v.length > 0 && v.every((x) => typeof x === 'object' && x !== null && !Array.isArray(x));

/** Rows under a header (given as shown), columns padded to their widest cell. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]))).join('  ').trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

/** A human-readable rendering of any command's result (what `--json` prints, as tables). */
export function renderTable(result: unknown): string {
  if (result === undefined) return '';
  const r = new Rendering();
  const body = renderWith(r, result);
  return r.hidden ? `${body}\n\n${HIDDEN_NOTE}` : body;
}

function renderWith(rendering: Rendering, result: unknown): string {
  if (isRecordArray(result)) return rendering.list(result);
  if (Array.isArray(result)) return result.length === 0 ? '(none)' : result.map((x) => rendering.cell(x, MAX_CELL)).join('\n');
  if (typeof result !== 'object' || result === null) return rendering.cell(result);
  const fields: string[][] = [];
  const sections: string[] = [];
  for (const [k, v] of Object.entries(result as Record<string, unknown>)) {
    const name = rendering.text(k);
    if (isRecordArray(v)) sections.push(`${name}:\n${rendering.list(v)}`);
    else if (Array.isArray(v) && v.length === 0 && k === 'items') sections.push(`${name}: (none)`);
    else if (typeof v === 'object' && v !== null && !Array.isArray(v)) {
      for (const [k2, v2] of Object.entries(v as Record<string, unknown>)) fields.push([`${name}.${rendering.text(k2)}`, rendering.cell(v2)]);
    } else fields.push([name, rendering.cell(v)]);
  }
  const width = Math.max(0, ...fields.map(([k]) => k.length));
  const head = fields.map(([k, v]) => `${k.padEnd(width)}  ${v}`).join('\n');
  return [head, ...sections].filter(Boolean).join('\n\n');
}

/** `--json`: one line of JSON, the same value, with no character a terminal obeys or hides (ADR 0047). */
export function jsonOutput(result: unknown): string {
  return `${jsonWithVisibleText(result)}\n`;
}

/** The one line a failure writes to stderr: its message (server or file text in it) made terminal-safe. */
export function errorText(e: CliError): string {
  return `ksctl: ${visibleText(e.message)}${e.code && e.exit === Exit.Invalid ? ` (${visibleText(e.code)})` : ''}\n`;
}
