import { Injectable, Optional } from '@nestjs/common';
import { AuditQuery, type AuditEventView, type AuditPage, type AuditVerification } from '@keyserver/api-contract';
import type { AuditCheckpoint } from '@keyserver/audit-chain';
import { AuditRepository, type AuditEvent, type AuditInput } from '@keyserver/data-access';
import { AuditSeals } from './audit-seal';
import { actorAudit, type Actor } from '../common/actor';

import { validateBody } from '../admin-sessions/admin-request';
import { Audited, auditEvent } from '../common/audited';

const EXPORT_PAGE = 500;

export const auditView = (e: AuditEvent): AuditEventView => ({ ...e, at: e.at.toISOString() });

/** Line breaks JSON.stringify leaves raw: NEL, LINE and PARAGRAPH SEPARATOR (below U+0020 it escapes already). */
const RAW_LINE_BREAKS = /[\u0085\u2028\u2029]/g;

/**
 * One export line: the entry's JSON with the line breaks JSON keeps raw written as `\uXXXX` (the same value), so
 * a reader that splits at every Unicode line break (Python's `splitlines`, editors, log viewers) still sees one
 * entry per line whatever text an orderer or approver wrote.
 */
export function auditExportLine(e: AuditEvent): string {
  return JSON.stringify(auditView(e)).replace(RAW_LINE_BREAKS, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** An export line holding a signed checkpoint (docs/adr/0048): `{"checkpoint":{seq, entryHash, token, genTime, tsaKeyid, tsaKeyVersion}}`. */
export function auditCheckpointLine(c: AuditCheckpoint): string {
  return JSON.stringify({ checkpoint: c });
}

/** Reading, verifying and exporting the hash-chained audit log (auditors and administrators). */
@Injectable()
export class AuditService {

  constructor(
    private readonly audit: AuditRepository,
    private readonly audited: Audited,
    // Always there in the app (AppModule); a unit of the service without checkpoints verifies the chain alone.
    @Optional() private readonly seals?: AuditSeals,
  ) {}

  async list(actor: Actor, query: unknown, requestId: string): Promise<AuditPage> {
    // Only a refused query is recorded (reads are not audited); the wrapper records it.
    const q: AuditQuery = await this.audited.run(auditEvent('audit.query', actor, requestId), async () => validateBody(AuditQuery, query));
    const page = await this.audit.list({
      action: q.action,
      outcome: q.outcome,
      actorOid: q.actor,
      keyid: q.keyid,
      operationId: q.operationId,
      adminSessionId: q.adminSessionId,
      from: q.from ? new Date(q.from) : undefined,
      to: q.to ? new Date(q.to) : undefined,
      cursor: q.cursor,
      limit: q.limit,
    });
    return { items: page.items.map(auditView), nextCursor: page.nextCursor };
  }

  async verify(actor: Actor, requestId: string): Promise<AuditVerification> {
    // Every signed checkpoint too: a rewritten entry at or before one is found even with every later hash recomputed.
    const r = await this.audit.verifyChain(undefined, this.seals?.forVerification());
    // The event records the outcome, not the (possibly long) lists: the chain itself holds the evidence.
    const { problems: _p, legacy: _l, ...summary } = r;
    await this.audit.append({ ...actorAudit(actor), action: 'audit.verify', outcome: 'SUCCESS', requestId, details: summary });
    return r;
  }

  /**
   * The whole chain oldest first, one JSON entry per line, then one line per signed checkpoint (read first, so each
   * seals an exported entry); verifiable offline with `audit-verify` / `ksctl audit verify --root`.
   */
  async export(actor: Actor, requestId: string): Promise<string> {
    const base: AuditInput = { ...actorAudit(actor), action: 'audit.export', outcome: 'SUCCESS', requestId };
    const checkpoints = (await this.seals?.list()) ?? [];
    const pages: AuditEvent[][] = [];
    let cursor: string | undefined;
    do {
      const page = await this.audit.list({ cursor, limit: EXPORT_PAGE });
      pages.push(page.items);
      cursor = page.nextCursor ?? undefined;
    } while (cursor);
    const events = pages.flat().reverse();
    await this.audit.append({ ...base, details: { entries: events.length, lastSeq: events.at(-1)?.seq ?? null, checkpoints: checkpoints.length } });
    const lines = [...events.map(auditExportLine), ...checkpoints.map(auditCheckpointLine)];
    return lines.join('\n') + (lines.length ? '\n' : '');
  }
}
