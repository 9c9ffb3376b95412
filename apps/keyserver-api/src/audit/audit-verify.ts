import { X509Certificate } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import {
  anchoredCheckpointTrust,
  auditVerifyStatus,
  unsealedTail,
  unsealedTailWarning,
  verifyAuditExportFile,
  type AuditChainReport,
  type CheckpointTrust,
} from '@keyserver/audit-chain';
import { visibleText } from '@keyserver/api-contract/visible-text';
import { splitPemCertificates } from '@keyserver/pki';
import { AuditRepository, createDb, DataAccessError } from '@keyserver/data-access';

/**
 * The report as lines: the verdict (when the chain verifies, its status and lastHash, the words and fields of `ksctl
 * audit verify`), then one line per problem and per legacy (rule v1) entry. Seqs, reasons and hashes come from the file
 * verified, which anyone may have written: each line goes through `visibleText` (ADR 0047), so an escape sequence, a
 * CR or a bidi override in them is shown as `\u{…}`, never obeyed by the terminal, and a report line stays one line.
 */
export function auditReportText(tool: string, r: AuditChainReport): string {
  const at = (seq: string) => (seq.startsWith('line') ? seq : `seq ${seq}`);
  const tail = unsealedTail(r);
  const lines = r.ok
    ? [
        `${tool}: OK, ${r.checked} entries verified`,
        `  status ${auditVerifyStatus(tail)}${tail ? `: unsealedTail entries=${tail.entries} afterSeq=${tail.afterSeq ?? 'null'}` : ''}`,
        `  lastHash ${r.lastHash}`,
      ]
    : [`${tool}: FAILED at ${at(r.firstBadSeq ?? '?')}: ${r.reason} (${r.checked} entries verified before it; ${r.problemCount} problem(s) in ${r.total} entries)`];
  for (const p of r.problems) lines.push(`  ${p.kind} ${at(p.seq)}: ${p.reason}`);
  if (r.problemCount > r.problems.length) lines.push(`  … ${r.problemCount - r.problems.length} more problem(s)`);
  for (const e of r.legacy) lines.push(`  ${e.kind} ${at(e.seq)}: ${e.reason}`);
  if (r.legacyCount > r.legacy.length) lines.push(`  … ${r.legacyCount - r.legacy.length} more legacy entries`);
  if (r.seal) {
    lines.push(
      r.seal.sealed
        ? `  sealed through seq ${r.seal.lastSealedSeq} at ${r.seal.lastSealedAt} (${r.seal.checkpoints} checkpoint(s); ${r.seal.unsealedEntries} later entries unsealed)${r.seal.anchored ? '' : '; checked against the certificates the tokens carry only: give --root to anchor them'}`
        : `  unsealed: no signed checkpoint verifies (${r.seal.checkpoints} checkpoint(s))`,
    );
  }
  return `${lines.map(visibleText).join('\n')}\n`;
}

const VERIFY_USAGE = 'usage: keyserver-api audit-verify <export.jsonl> [--root ROOT.pem [--tsa-cert TSA.pem]]\n';

/**
 * `--name VALUE` pairs of the given names, each at most once, values not starting with `--`, nothing else; null when the
 * arguments are not that (usage). An option ignored or a value taken from the next option would change what a command
 * checks or records without a word (`--rooot` verified unanchored, `--by --reason x` signed by "--reason").
 */
function strictOptions(args: string[], names: readonly string[]): Record<string, string> | null {
  const out: Record<string, string> = {};
  for (let i = 0; i < args.length; i += 2) {
    const [name, value] = [args[i], args[i + 1]];
    if (!names.includes(name) || Object.hasOwn(out, name) || value === undefined || value.startsWith('--')) return null;
    out[name] = value;
  }
  return out;
}

/** `--root FILE` and `--tsa-cert FILE`, each at most once, nothing else; null when the options are not that. */
function verifyOptions(options: string[]): { root?: string; tsaCert?: string } | null {
  const out = strictOptions(options, ['--root', '--tsa-cert']);
  // A TSA certificate without a ROOT anchors nothing: refused rather than verified unanchored.
  if (!out || (out['--tsa-cert'] !== undefined && out['--root'] === undefined)) return null;
  return { root: out['--root'], tsaCert: out['--tsa-cert'] };
}

/**
 * `keyserver-api audit-verify FILE [--root ROOT.pem [--tsa-cert TSA.pem]]` (the verifier itself is shared with `ksctl
 * audit verify`): prints the outcome; exit code 0 when the whole file verifies (entries and signed checkpoints, the
 * latter against --root when given), 1 otherwise, 2 on usage errors. A valid chain with an unsealed tail also gets the
 * warning `audit-verify: warning: audit_tail_unsealed: …` on stderr.
 */
export async function auditVerifyCommand(file: string | undefined, options: string[] = []): Promise<number> {
  // An unknown option (a typo of --root), a missing value or --tsa-cert alone would verify unanchored: usage.
  const opts = file ? verifyOptions(options) : null;
  if (!file || !opts) {
    process.stderr.write(VERIFY_USAGE);
    return 2;
  }
  let trust: CheckpointTrust | undefined;
  try {
    // A regular file only: a directory fails mid-read, a device or FIFO (/dev/zero, a pipe) may never end.
    if (!statSync(file).isFile()) throw Object.assign(new Error('not a regular file'), { code: 'not a regular file' });
    const certs = (path: string) => splitPemCertificates(readFileSync(path, 'utf8')).map((p) => new X509Certificate(p));
    if (opts.root) trust = anchoredCheckpointTrust({ roots: certs(opts.root), tsaCerts: opts.tsaCert ? certs(opts.tsaCert) : undefined });
  } catch (err) {
    process.stderr.write(`audit-verify: cannot read ${visibleText(file)} or a certificate: ${visibleText((err as NodeJS.ErrnoException).code ?? String(err))}\n`);
    return 2;
  }
  // Streams the file: bounded memory whatever the export's size.
  let r: AuditChainReport;
  try {
    r = await verifyAuditExportFile(file, trust);
  } catch (err) {
    // Read errors only (the verifier reports every content problem in its report).
    process.stderr.write(`audit-verify: cannot read ${visibleText(file)}: ${visibleText((err as NodeJS.ErrnoException).code ?? String(err))}\n`);
    return 2;
  }
  process.stdout.write(auditReportText('audit-verify', r));
  // A valid chain is not a proven complete one (ADR 0048 addendum "export errors and the unsealed tail"): warned as
  // ksctl does, exit 0 still.
  const tail = r.ok ? unsealedTail(r) : null;
  if (tail) process.stderr.write(`${visibleText(unsealedTailWarning('audit-verify', tail))}\n`);
  return r.ok ? 0 : 1;
}

const ACK_USAGE = 'usage: keyserver-api audit-acknowledge SEQ --by NAME --reason TEXT\n';

/**
 * `keyserver-api audit-acknowledge SEQ --by NAME --reason TEXT`: the repair step for an entry of the v1 writer that
 * verification cannot reconstruct (docs/adr/0009-audit-canonical-form.md). Appends an audit.legacy_acknowledged
 * entry; exit 0 when written, 1 when refused (the entry is not such an entry), 2 on usage errors.
 */
export async function auditAcknowledgeCommand(databaseUrl: string, args: string[]): Promise<number> {
  const [seq, ...rest] = args;
  const opts = strictOptions(rest, ['--by', '--reason']);
  const by = opts?.['--by'];
  const reason = opts?.['--reason'];
  if (!seq || seq.startsWith('--') || !by || !reason) {
    process.stderr.write(ACK_USAGE);
    return 2;
  }
  const db = createDb(databaseUrl, { poolSize: 1 });
  try {
    const e = await new AuditRepository(db).acknowledgeLegacy(seq, by, reason);
    process.stdout.write(`audit-acknowledge: seq ${seq} acknowledged by entry seq ${e.seq}\n`);
    return 0;
  } catch (err) {
    if (!(err instanceof DataAccessError) || err.code === 'database_unavailable') throw err;
    process.stdout.write(`audit-acknowledge: refused (${err.code}): ${err.message}\n`);
    return err.code === 'invalid_input' ? 2 : 1;
  } finally {
    await db.close();
  }
}
