import { readFileSync } from 'node:fs';
import { verifyAuditExport } from '@keyserver/audit-chain';

/** `keyserver-api audit-verify FILE` (the verifier itself is shared with `ksctl audit verify`): prints the outcome; exit code 0 when the whole file verifies, 1 otherwise, 2 on usage errors. */
export function auditVerifyCommand(file: string | undefined): number {
  if (!file) {
    process.stderr.write('usage: keyserver-api audit-verify <export.jsonl>\n');
    return 2;
  }
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    process.stderr.write(`audit-verify: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}\n`);
    return 2;
  }
  const r = verifyAuditExport(text);
  if (r.ok) {
    process.stdout.write(`audit-verify: OK, ${r.checked} entries verified\n`);
    return 0;
  }
  process.stdout.write(`audit-verify: FAILED at seq ${r.firstBadSeq}: ${r.reason} (${r.checked} entries verified before it)\n`);
  return 1;
}
