import { Readable } from 'node:stream';
import { Inject, Injectable, Optional } from '@nestjs/common';
import type { Logger } from 'pino';
import { AuditQuery, type AuditEventView, type AuditPage, type AuditVerification } from '@keyserver/api-contract';
import type { AuditCheckpoint } from '@keyserver/audit-chain';
import { AuditRepository, type AuditEvent, type AuditChainSnapshot } from '@keyserver/data-access';
import { AuditSeals } from './audit-seal';
import { actorAudit, type Actor } from '../common/actor';
import { LOGGER } from '../app/tokens';

import { validateBody } from '../admin-sessions/admin-request';
import { Audited, auditEvent } from '../common/audited';

/** Entries (and checkpoints) read per statement while an export streams. */
const EXPORT_PAGE = 500;
/** Characters the export stream holds ahead of the socket; past them it reads the next batch only when the client read. */
const EXPORT_BUFFER = 64 * 1024;

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
    @Optional() @Inject(LOGGER) private readonly logger?: Logger,
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
   * The whole chain oldest first, one JSON entry per line, then one line per signed checkpoint; verifiable offline with
   * `audit-verify` / `ksctl audit verify --root`. Streams (ADR 0048 addendum "the export streams"): the chain as it
   * stood when the export began ({@link AuditRepository.chainSnapshot}), read a batch at a time and only as fast as
   * the client reads; the bytes are those the in-memory export wrote. A client that goes away stops the reads; a
   * failure after the headers went out cuts the response without its last chunk, which ksctl reports as truncated.
   * The first chunk is read here, before the handler returns: a failure before any byte went out (the snapshot, the
   * first batch, the event) is the route's error like any other (problem+json with its code, audited FAILED), not an
   * error of a stream the server had already begun to answer with.
   */
  export(actor: Actor, requestId: string): Promise<Readable> {
    return this.audited.run(auditEvent('audit.export', actor, requestId), async (scope) => {
      const snapshot = await this.audit.chainSnapshot();
      const chunks = this.exportChunks(snapshot, requestId);
      try {
        const first = await chunks.next();
        await this.audit.append({ ...scope.event, details: { entries: snapshot.entries, lastSeq: snapshot.head, checkpoints: snapshot.checkpoints } });
        scope.committed();
        // Text chunks, not Buffers: the socket encodes each as it writes it and frees it then, where a Buffer per
        // batch would live off the heap until a garbage collection (tens of MB of resident memory).
        return Readable.from(startedWith(first, chunks), { objectMode: false, encoding: 'utf8', highWaterMark: EXPORT_BUFFER });
      } catch (err) {
        await chunks.return(undefined);
        throw err;
      }
    });
  }

  private async *exportChunks(snapshot: AuditChainSnapshot, requestId: string): AsyncGenerator<string> {
    const lines = <T>(items: T[], line: (x: T) => string) => items.map((x) => `${line(x)}\n`).join('');
    let entries = 0;
    let sent = false;
    let done = false;
    try {
      // Checkpoints up to `sealed` seal entries up to `head` (ADR 0048): the checkpoint lines come last.
      for await (const batch of this.audit.entryBatches(snapshot.head, EXPORT_PAGE)) {
        entries += batch.length;
        sent = true;
        yield lines(batch, auditExportLine);
      }
      for (let after: string | null = null; snapshot.sealed !== null; ) {
        const batch = await this.audit.checkpointsBetween(after, snapshot.sealed, EXPORT_PAGE);
        if (batch.length === 0) break;
        after = batch[batch.length - 1].seq;
        sent = true;
        yield lines(batch, auditCheckpointLine);
      }
      done = true;
    } catch (err) {
      // Before the first chunk the route answers the error itself (export()).
      if (sent) this.logger?.warn({ requestId, entries, err: (err as Error).message }, 'audit export failed while streaming: the response is cut short (clients see it truncated)');
      throw err;
    } finally {
      // Reached when the client went away too: the stream is destroyed and no further batch is read.
      if (!done && sent) this.logger?.info({ requestId, entries, of: snapshot.entries }, 'audit export stopped before its end');
    }
  }
}

/**
 * `rest` with the chunk already read from it in front; returning it (a client that went away) returns `rest` too,
 * even before its first chunk was taken.
 */
async function* startedWith(first: IteratorResult<string>, rest: AsyncGenerator<string>): AsyncGenerator<string> {
  try {
    if (first.done) return;
    yield first.value;
    yield* rest;
  } finally {
    await rest.return(undefined);
  }
}
