import { createHash, randomUUID } from 'node:crypto';
import { domainToASCII } from 'node:url';
import type { PoolClient } from 'pg';
import { UUID, sqlQuery, sqlTransaction, type Db, type Tx } from '../db';
import { DataAccessError } from '../errors';
import type { AuditInput } from '../types';
import { needsApproval } from '../policy/operation-policy';
import { holdSession, type SessionScope } from './admin-participation';
import { appendAuditTx } from './audit.repository';

/**
 * The operation events that notify someone (docs/notifications.md). `operation.reopened`: a withdrawal of approvals
 * sent the orderer's APPROVED operation back to REQUESTED (ADR 0023 addendum "the orderer hears of a fall back").
 */
export type OperationNotice = 'operation.approval_requested' | 'operation.approved' | 'operation.rejected' | 'operation.reopened';

/** The events counted against the hourly caps (per mailbox, per webhook endpoint): what a burst can multiply. */
const CAPPED = ['operation.approval_requested', 'operation.reopened'];

/** The event as frozen in the state change's transaction: what was asked, never a token or an acting link. */
export interface OperationNoticePayload {
  type: OperationNotice;
  version: 1;
  occurredAt: string;
  operation: {
    id: string;
    description: string;
    state: string;
    orderer: { subjectId: string; displayName: string };
    validFrom: string;
    validTo: string;
    keys: { keyid: string; usagesAllowed: number; requiredApprovers: number }[];
    rejectionReason: string | null;
  };
  /**
   * The approval-request round, present from round 2 on: the operation fell back to REQUESTED because an approval was
   * withdrawn (its approver lost the right), and the approvers who may still approve are asked again. Absent in round
   * 1, so the first round's bodies are as they always were. `operation.reopened` always has it (the round it opened).
   */
  round?: number;
}

/** A four-eyes administrative session waiting for other administrators' authorizations. */
export interface AdminSessionNoticePayload {
  type: 'admin_session.authorization_requested';
  version: 1;
  occurredAt: string;
  adminSession: {
    id: string;
    description: string;
    creator: { subjectId: string; displayName: string };
    requiredApprovals: number;
    /** Opened to give or take the administrator and approver natures (ADR 0044). */
    powers: boolean;
    expiresAt: string;
  };
}

/** Every event a notification can be about. */
export type NoticePayload = OperationNoticePayload | AdminSessionNoticePayload;

/**
 * The outbox hook: called INSIDE the transaction that changes the operation (OperationRepository), so the event
 * exists exactly when the change committed. Decides who to tell from the grants in force in that transaction:
 * approval requests go to the enabled USER subjects holding APPROVE on a key that needs approvals (never the
 * orderer); `approved` and `rejected` go to the orderer. A second call for the same event, operation and round is a
 * no-op.
 *
 * `again`: a new round of approval requests (ADR 0023 addendum "a new round"), written by `withdrawLostApprovals` in
 * the transaction of the admin change that sent the operation back to REQUESTED (the operation row locked FOR UPDATE
 * there, so two replicas' withdrawals write one round between them; the unique (operation, event, round) makes it
 * once regardless). It asks only who can still make a difference: per key still short of approvals, the subjects
 * who may approve it and have not. `approved` and `rejected` carry the current round, so an operation approved
 * again after a fall back tells its orderer again; `reopened` (written right after the new round, same transaction)
 * carries that new round, so the orderer hears of each fall back once. Returns the round written, or null when
 * nothing was written.
 */
export async function enqueueOperationNotice(tx: Tx, type: OperationNotice, operationId: string, opts: { again?: boolean } = {}): Promise<number | null> {
  const [op] = await tx.$queryRaw<
    { id: string; description: string; state: string; ordererId: string; ordererName: string; validFrom: Date; validTo: Date; rejectionReason: string | null; now: Date }[]
  >`SELECT o."id", o."description", o."state"::text AS "state", o."ordererId", s."displayName" AS "ordererName", o."validFrom", o."validTo",
           o."rejectionReason", now() AS "now"
      FROM "operation" o JOIN "subject" s ON s."id" = o."ordererId" WHERE o."id" = ${operationId}::uuid`;
  if (!op) throw new DataAccessError('not_found', 'operation not found');
  const keys = await tx.$queryRaw<{ keyid: string; usagesAllowed: number; requiredApprovers: number }[]>`
    SELECT k."keyid", ok."usagesAllowed", ok."requiredApprovers" FROM "operation_key" ok JOIN "key" k ON k."id" = ok."keyId"
     WHERE ok."operationId" = ${operationId}::uuid ORDER BY k."keyid"`;
  const [{ current }] = await tx.$queryRaw<{ current: number | null }[]>`
    SELECT max("round")::int AS "current" FROM "notification_outbox" WHERE "operationId" = ${operationId}::uuid AND "event" = 'operation.approval_requested'`;
  let round = current ?? 1;
  let recipientIds: string[];
  if (type === 'operation.approval_requested' && opts.again) {
    round = (current ?? 0) + 1;
    const rows = await tx.$queryRaw<{ id: string }[]>`
      SELECT DISTINCT s."id" FROM "operation_key" ok
        JOIN "role_key_permission" rkp ON rkp."keyId" = ok."keyId" AND 'APPROVE' = ANY(rkp."permissions")
        JOIN "subject_role" sr ON sr."roleId" = rkp."roleId"
        JOIN "subject" s ON s."id" = sr."subjectId"
       WHERE ok."operationId" = ${operationId}::uuid
         AND ok."requiredApprovers" > (SELECT count(*) FROM "approval" a WHERE a."operationId" = ok."operationId" AND a."keyId" = ok."keyId")
         AND NOT EXISTS (SELECT 1 FROM "approval" a WHERE a."operationId" = ok."operationId" AND a."keyId" = ok."keyId" AND a."approverId" = s."id")
         AND s."kind" = 'USER' AND s."enabled" AND s."account" = 'MEMBER' AND s."id" <> ${op.ordererId}::uuid
       ORDER BY s."id"`;
    recipientIds = rows.map((r) => r.id);
  } else if (type === 'operation.approval_requested') {
    // An operation whose keys need no approval is usable at once: nobody is asked anything.
    if (!needsApproval(keys)) return null;
    const rows = await tx.$queryRaw<{ id: string }[]>`
      SELECT DISTINCT s."id" FROM "operation_key" ok
        JOIN "role_key_permission" rkp ON rkp."keyId" = ok."keyId" AND 'APPROVE' = ANY(rkp."permissions")
        JOIN "subject_role" sr ON sr."roleId" = rkp."roleId"
        JOIN "subject" s ON s."id" = sr."subjectId"
       WHERE ok."operationId" = ${operationId}::uuid AND ok."requiredApprovers" > 0
         AND s."kind" = 'USER' AND s."enabled" AND s."account" = 'MEMBER' AND s."id" <> ${op.ordererId}::uuid
       ORDER BY s."id"`;
    recipientIds = rows.map((r) => r.id);
  } else {
    recipientIds = [op.ordererId];
  }
  const payload: OperationNoticePayload = {
    type,
    version: 1,
    occurredAt: op.now.toISOString(),
    operation: {
      id: op.id,
      description: op.description,
      state: op.state,
      orderer: { subjectId: op.ordererId, displayName: op.ordererName },
      validFrom: op.validFrom.toISOString(),
      validTo: op.validTo.toISOString(),
      keys: keys.map((k) => ({ keyid: k.keyid, usagesAllowed: k.usagesAllowed, requiredApprovers: k.requiredApprovers })),
      rejectionReason: op.rejectionReason,
    },
    ...(round > 1 ? { round } : {}),
  };
  const written = await tx.$executeRaw`
    INSERT INTO "notification_outbox" ("id", "event", "operationId", "recipientIds", "payload", "round")
    VALUES (gen_random_uuid(), ${type}, ${operationId}::uuid, ${recipientIds}::uuid[], ${JSON.stringify(payload)}::jsonb, ${round}::int)
    ON CONFLICT ("operationId", "event", "round") DO NOTHING`;
  return written === 1 ? round : null;
}

/**
 * The outbox hook of a four-eyes admin session opened PENDING (AdminSessionRepository.open, same transaction): the
 * enabled USER administrators other than its creator are asked to authorize it.
 */
export async function enqueueAdminSessionNotice(tx: Tx, sessionId: string): Promise<void> {
  const [s] = await tx.$queryRaw<{ id: string; description: string; state: string; creatorId: string; creatorName: string; requiredApprovals: number; powers: boolean; expiresAt: Date; now: Date }[]>`
    SELECT a."id", a."description", a."state"::text AS "state", a."creatorId", s."displayName" AS "creatorName", a."requiredApprovals", a."powers", a."expiresAt", now() AS "now"
      FROM "admin_session" a JOIN "subject" s ON s."id" = a."creatorId" WHERE a."id" = ${sessionId}::uuid`;
  if (!s) throw new DataAccessError('not_found', 'admin session not found');
  if (s.state !== 'PENDING') return;
  const rows = await tx.$queryRaw<{ id: string }[]>`
    SELECT DISTINCT s."id" FROM "subject" s
      JOIN "subject_role" sr ON sr."subjectId" = s."id"
      JOIN "role" r ON r."id" = sr."roleId" AND 'ADMINISTRATOR' = ANY(r."natures")
     WHERE s."kind" = 'USER' AND s."enabled" AND s."account" = 'MEMBER' AND s."id" <> ${s.creatorId}::uuid ORDER BY s."id"`;
  const payload: AdminSessionNoticePayload = {
    type: 'admin_session.authorization_requested',
    version: 1,
    occurredAt: s.now.toISOString(),
    adminSession: {
      id: s.id,
      description: s.description,
      creator: { subjectId: s.creatorId, displayName: s.creatorName },
      requiredApprovals: s.requiredApprovals,
      powers: s.powers,
      expiresAt: s.expiresAt.toISOString(),
    },
  };
  await tx.$executeRaw`
    INSERT INTO "notification_outbox" ("id", "event", "adminSessionId", "recipientIds", "payload")
    VALUES (gen_random_uuid(), ${payload.type}, ${sessionId}::uuid, ${rows.map((r) => r.id)}::uuid[], ${JSON.stringify(payload)}::jsonb)
    ON CONFLICT ("adminSessionId", "event") DO NOTHING`;
}

/** A recipient as the dispatcher renders it. */
export interface NotificationRecipient {
  subjectId: string;
  displayName: string;
}

/** A delivery claimed by one dispatcher until `leaseUntil`; `leaseToken` fences its completion. */
export interface ClaimedDelivery {
  id: string;
  outboxId: string;
  channel: 'EMAIL' | 'WEBHOOK';
  target: string;
  address: string | null;
  recipients: NotificationRecipient[];
  attempts: number;
  leaseToken: string;
  payload: NoticePayload;
  /**
   * Why the delivery no longer applies, checked at claim (a retry may come long after the event): an approval
   * request whose operation left REQUESTED or expired; an email whose recipient turned email off or was disabled.
   */
  staleReason: string | null;
  /**
   * The recipient's (EMAIL) or the endpoint's (WEBHOOK) hourly cap on approval requests was reached: instead of this
   * request, send the one short notice or summary call of that hour saying that further requests are held back and
   * wait in the console (no operation, no orderer-written text).
   */
  heldNotice: boolean;
}

/** `lastError` of an approval request held back over its recipient's hourly cap (NOTIFY_RECIPIENT_HOURLY_MAX). */
export const RECIPIENT_HOURLY_LIMIT = 'recipient_hourly_limit';

/** `lastError` of an approval-request webhook call held back over its endpoint's hourly cap (NOTIFY_WEBHOOK_HOURLY_MAX). */
export const ENDPOINT_HOURLY_LIMIT = 'endpoint_hourly_limit';

/** `lastError` of an approval request of an earlier round, still queued when the operation was asked about again. */
export const SUPERSEDED = 'superseded by a later approval-request round';

/** The hourly caps on approval requests (ADR 0023 addenda): per mailbox, and per webhook endpoint. */
export interface NotificationCaps {
  recipientHourlyMax: number;
  webhookHourlyMax: number;
}

/** The domain of an address as RFC 5321 compares it: IDNA to A-labels (UTS 46 mapping, lower case), else lower case. */
function canonicalDomain(domain: string): string {
  return (domainToASCII(domain) || domain).toLowerCase();
}

/**
 * An address as it is stored (administrators' input): surrounding whitespace dropped, the domain lower-cased (domain
 * names are case-insensitive, RFC 5321 2.4 and RFC 1035; A-labels compare case-insensitively, RFC 5890), the local
 * part kept as typed (RFC 5321 2.4: only the receiving host may interpret its case, so mail goes where it was typed).
 */
export function storedAddress(address: string): string {
  const a = address.trim();
  const at = a.lastIndexOf('@');
  return at < 1 ? a : `${a.slice(0, at)}@${canonicalDomain(a.slice(at + 1))}`;
}

/**
 * The mailbox an address reaches, as the per-recipient cap counts it: Unicode NFC, whitespace dropped, domain as
 * {@link storedAddress}, and the local part case-folded too. Mailbox providers treat local parts case-insensitively
 * almost without exception, and for a cap merging two spellings that might be two mailboxes only makes it stricter,
 * while keeping them apart would let one mailbox get the cap once per spelling.
 */
export function canonicalMailbox(address: string): string {
  const a = address.trim().normalize('NFC');
  const at = a.lastIndexOf('@');
  return at < 1 ? a.toLowerCase() : `${a.slice(0, at).toLowerCase()}@${canonicalDomain(a.slice(at + 1))}`;
}

/** RFC 3986 unreserved characters: percent-encoding one of them changes nothing (6.2.2.2). */
const UNRESERVED = /^[A-Za-z0-9._~-]$/;

/** Percent-encodings of unreserved characters decoded, the others' hex upper-cased (RFC 3986 6.2.2.1, 6.2.2.2). */
function normalisedEncodings(text: string): string {
  return text.replace(/%([0-9a-fA-F]{2})/g, (_m, h: string) => {
    const ch = String.fromCharCode(parseInt(h, 16));
    return UNRESERVED.test(ch) ? ch : `%${h.toUpperCase()}`;
  });
}

/**
 * The endpoint a webhook URL reaches, as the per-endpoint cap counts it (ADR 0023 addendum "one endpoint, one cap"):
 * the WHATWG URL parse (scheme and host lower-cased, the host through IDNA to A-labels and percent-decoded, IPv4 in
 * any notation as dotted decimal, the default port dropped, dot segments resolved, an empty path as `/`, non-ASCII
 * percent-encoded as UTF-8), then: trailing dots of the host dropped (`example.com.` is `example.com`), percent-
 * encodings normalised (unreserved characters decoded, hex upper-cased), the fragment (never sent), the userinfo
 * (credentials, not a place) and an empty query (`?`) dropped. Path and query are otherwise kept as they are:
 * their case and their reserved characters (`%2F` is not `/`) tell endpoints apart (a Slack token, a Teams `sig`).
 */
export function canonicalEndpoint(url: string): string {
  let text = url.trim();
  // Twice: decoding `%2E` may make a dot segment that only the next parse resolves; after that it is a fixed point.
  for (let i = 0; i < 2; i++) {
    const u = new URL(text);
    const host = u.hostname.replace(/\.+$/, '');
    const port = u.port ? `:${u.port}` : '';
    text = `${u.protocol}//${host}${port}${normalisedEncodings(u.pathname)}${normalisedEncodings(u.search)}`;
  }
  return text;
}

/** The cap key of a webhook endpoint: a digest of its canonical URL, so the URL (a bearer secret for Slack and Teams) never reaches the table. */
export function endpointCapKey(url: string): string {
  return `webhook:sha256:${createHash('sha256').update(canonicalEndpoint(url), 'utf8').digest('hex')}`;
}

/** A configured webhook endpoint as the claim counts it: its name (the delivery's target) and its URL. */
export interface WebhookCapTarget {
  name: string;
  url: string;
}

export interface DeliveryRow {
  id: string;
  outboxId: string;
  event: string;
  channel: 'EMAIL' | 'WEBHOOK';
  target: string;
  address: string | null;
  recipientIds: string[];
  state: 'PENDING' | 'SENT' | 'DEAD' | 'SKIPPED';
  attempts: number;
  lastError: string | null;
  sentAt: Date | null;
}

/** What expanding one event produced (for the dispatcher's log). */
export interface ExpandedEvent {
  outboxId: string;
  event: string;
  /** The operation's or the admin session's id. */
  about: string;
  recipients: number;
  deliveries: number;
}

/** A subject's notification settings (defaults when it never changed them). */
export interface NotificationSettings {
  subjectId: string;
  email: string | null;
  emailEnabled: boolean;
  webhookEnabled: boolean;
  updatedAt: Date | null;
}

const MAX_ERROR = 500;

/** A claimed row as the claim's UPDATE returns it: a {@link ClaimedDelivery} before its recipients' names are read. */
interface ClaimRow extends Omit<ClaimedDelivery, 'recipients' | 'leaseToken'> {
  event: string;
  recipientIds: string[] | null;
  createdAt: Date;
  admitted: boolean;
}

/** Notices that ask their recipients to act as approvers or administrators: sent to proven member accounts only. */
const MEMBERS_ONLY = ['operation.approval_requested', 'admin_session.authorization_requested'];

/**
 * The dispatcher's side of the outbox and the per-subject settings. Every claim is FOR UPDATE SKIP LOCKED on the
 * pool (short transactions, no lock held while a message is sent), so any number of replicas dispatch at once.
 */
export class NotificationRepository {
  constructor(private readonly db: Db) {}

  /**
   * Turns up to `limit` unexpanded events into deliveries, each event exactly once (its row is locked, the
   * deliveries are unique per target): one EMAIL per recipient with an address on file who did not opt out (when
   * `channels.email`: SMTP is configured), one WEBHOOK per configured endpoint naming the recipients who did not opt
   * out of webhooks.
   */
  async expand(channels: { email: boolean; webhooks: readonly string[] }, limit = 20): Promise<ExpandedEvent[]> {
    return sqlTransaction(this.db, async (c) => {
      const events = (
        await c.query<{ id: string; event: string; about: string; recipientIds: string[] | null }>(
          `SELECT "id", "event", COALESCE("operationId", "adminSessionId") AS "about", "recipientIds" FROM "notification_outbox"
            WHERE "expandedAt" IS NULL ORDER BY "createdAt", "id" LIMIT $1 FOR UPDATE SKIP LOCKED`,
          [limit],
        )
      ).rows;
      const out: ExpandedEvent[] = [];
      for (const e of events) {
        // Asked to approve or to authorize: only accounts whose last sign-in proved a member (ADR 0040 addendum),
        // read again here in case one was recorded as a guest since the event.
        const people = (
          await c.query<{ id: string; email: string | null; emailEnabled: boolean; webhookEnabled: boolean }>(
            `SELECT s."id", p."email", COALESCE(p."emailEnabled", true) AS "emailEnabled", COALESCE(p."webhookEnabled", true) AS "webhookEnabled"
               FROM "subject" s LEFT JOIN "notification_preference" p ON p."subjectId" = s."id"
              WHERE s."id" = ANY($1::uuid[]) AND s."enabled" AND (NOT ($2::text = ANY($3::text[])) OR s."account" = 'MEMBER') ORDER BY s."id"`,
            [e.recipientIds ?? [], e.event, MEMBERS_ONLY],
          )
        ).rows;
        let deliveries = 0;
        for (const p of people) {
          if (!channels.email || !p.email || !p.emailEnabled) continue;
          const r = await c.query(
            `INSERT INTO "notification_delivery" ("id", "outboxId", "channel", "target", "address", "recipientIds")
             VALUES (gen_random_uuid(), $1, 'EMAIL', $2::text, $3, ARRAY[$2::uuid]) ON CONFLICT DO NOTHING`,
            [e.id, p.id, p.email],
          );
          deliveries += r.rowCount ?? 0;
        }
        const webhookRecipients = people.filter((p) => p.webhookEnabled).map((p) => p.id);
        if (webhookRecipients.length > 0) {
          for (const name of channels.webhooks) {
            const r = await c.query(
              `INSERT INTO "notification_delivery" ("id", "outboxId", "channel", "target", "recipientIds")
               VALUES (gen_random_uuid(), $1, 'WEBHOOK', $2, $3::uuid[]) ON CONFLICT DO NOTHING`,
              [e.id, name, webhookRecipients],
            );
            deliveries += r.rowCount ?? 0;
          }
        }
        await c.query(`UPDATE "notification_outbox" SET "expandedAt" = now() WHERE "id" = $1`, [e.id]);
        out.push({ outboxId: e.id, event: e.event, about: e.about, recipients: (e.recipientIds ?? []).length, deliveries });
      }
      return out;
    });
  }

  /**
   * Claims up to `limit` due deliveries for `leaseMs` (one UPDATE over a FOR UPDATE SKIP LOCKED selection: two
   * dispatchers never hold the same row; a row whose lease ran out is due again). Counts the attempt at claim, so
   * a dispatcher that dies mid-send still uses one up.
   */
  async claim(
    leaseMs: number,
    maxAttempts: number,
    limit = 10,
    recipientHourlyMax = 20,
    webhookHourlyMax = 60,
    endpoints: readonly WebhookCapTarget[] = [],
  ): Promise<ClaimedDelivery[]> {
    const leaseToken = randomUUID();
    const endpointKeys = new Map(endpoints.map((e) => [e.name, endpointCapKey(e.url)]));
    const rows = await sqlTransaction(this.db, async (c) => {
      const claimed = await this.claimRows(c, leaseToken, leaseMs, maxAttempts, limit);
      await this.applyCaps(c, claimed, { recipientHourlyMax, webhookHourlyMax }, endpointKeys);
      return claimed;
    });
    if (rows.length === 0) return [];
    const ids = [...new Set(rows.flatMap((r) => r.recipientIds ?? []))];
    const names = new Map(
      (await sqlQuery<{ id: string; displayName: string }>(this.db, `SELECT "id", "displayName" FROM "subject" WHERE "id" = ANY($1::uuid[])`, [ids])).map((s) => [
        s.id,
        s.displayName,
      ]),
    );
    return rows.map((r) => ({
      id: r.id,
      outboxId: r.outboxId,
      channel: r.channel,
      target: r.target,
      address: r.address,
      recipients: (r.recipientIds ?? []).map((id) => ({ subjectId: id, displayName: names.get(id) ?? '' })),
      attempts: r.attempts,
      leaseToken,
      payload: r.payload,
      staleReason: r.staleReason,
      heldNotice: r.heldNotice,
    }));
  }

  /**
   * The hourly caps on approval requests (ADR 0023 addenda): an orderer may create operations in a loop, and each
   * would mail every approver and post to every webhook endpoint. Each approval request still due is counted against
   * one key: an email against its canonical mailbox (`email:` + {@link canonicalMailbox}, so spellings of one mailbox
   * share a cap), a webhook call against its endpoint ({@link endpointCapKey} of its URL, so names configured with
   * spellings of one URL share a cap; `webhook:` + name for a name this replica does not know). In the claim's transaction, per key
   * (sorted, so two claims cannot deadlock) under a transaction-level advisory lock: requests admitted under that key
   * in the last hour are counted; up to the cap are admitted (`admittedAt`), the next one becomes the hour's one
   * notice or summary (`heldNotice`), the rest are held (`staleReason` recipient_hourly_limit or
   * endpoint_hourly_limit, then SKIPPED by the dispatcher). The lock makes a second replica's count wait for the
   * first's commit (READ COMMITTED: the count statement sees it), so racing dispatchers never exceed a cap. A retry of
   * an admitted request or of the notice is not counted again; stale requests are not counted at all. The orderer's
   * notice of a fall back (`operation.reopened`) is counted the same way (one admin change can reopen many operations
   * at once) but never becomes the hour's notice: over the cap it is held.
   */
  private async applyCaps(c: PoolClient, claimed: ClaimRow[], caps: NotificationCaps, endpointKeys: ReadonlyMap<string, string>): Promise<void> {
    const keyOf = (r: ClaimRow) => (r.channel === 'EMAIL' ? `email:${canonicalMailbox(r.address as string)}` : (endpointKeys.get(r.target) ?? `webhook:${r.target}`));
    const capped = claimed
      .filter((r) => CAPPED.includes(r.event) && (r.channel === 'WEBHOOK' || r.address) && r.staleReason === null && !r.admitted && !r.heldNotice)
      .sort((x, y) => x.createdAt.getTime() - y.createdAt.getTime() || x.id.localeCompare(y.id));
    const keys = [...new Set(capped.map(keyOf))].sort();
    for (const key of keys) {
      const [max, reason] = key.startsWith('email:') ? [caps.recipientHourlyMax, RECIPIENT_HOURLY_LIMIT] : [caps.webhookHourlyMax, ENDPOINT_HOURLY_LIMIT];
      await sqlQuery(c, `SELECT pg_advisory_xact_lock(hashtextextended('notification-cap:' || $1::text, 0))`, [key]);
      const [seen] = await sqlQuery<{ admitted: number; noticed: boolean }>(
        c,
        `SELECT (SELECT count(*)::int FROM "notification_delivery" WHERE "capKey" = $1 AND "admittedAt" > now() - interval '1 hour') AS "admitted",
                EXISTS (SELECT 1 FROM "notification_delivery" WHERE "capKey" = $1 AND "heldAt" > now() - interval '1 hour' AND "heldNotice") AS "noticed"`,
        [key],
      );
      let admitted = seen.admitted;
      let noticed = seen.noticed;
      for (const r of capped.filter((x) => keyOf(x) === key)) {
        if (admitted < max) {
          await sqlQuery(c, `UPDATE "notification_delivery" SET "admittedAt" = now(), "capKey" = $2 WHERE "id" = $1::uuid`, [r.id, key]);
          admitted += 1;
        } else if (!noticed && r.event === 'operation.approval_requested') {
          // The hour's one notice or summary says approval requests are held: only a request becomes it.
          await sqlQuery(c, `UPDATE "notification_delivery" SET "heldAt" = now(), "heldNotice" = true, "capKey" = $2 WHERE "id" = $1::uuid`, [r.id, key]);
          r.heldNotice = true;
          noticed = true;
        } else {
          await sqlQuery(c, `UPDATE "notification_delivery" SET "heldAt" = now(), "capKey" = $2 WHERE "id" = $1::uuid`, [r.id, key]);
          r.staleReason = reason;
        }
      }
    }
  }

  private claimRows(c: PoolClient, leaseToken: string, leaseMs: number, maxAttempts: number, limit: number): Promise<ClaimRow[]> {
    return sqlQuery<ClaimRow>(
      c,
      `UPDATE "notification_delivery" d
          SET "leaseToken" = $1::uuid, "leaseUntil" = now() + make_interval(secs => $2::double precision / 1000), "attempts" = d."attempts" + 1
         FROM "notification_outbox" o
        WHERE o."id" = d."outboxId" AND d."id" IN (
              SELECT "id" FROM "notification_delivery"
               WHERE "state" = 'PENDING' AND "nextAttemptAt" <= now() AND ("leaseUntil" IS NULL OR "leaseUntil" < now()) AND "attempts" < $3
               ORDER BY "nextAttemptAt", "id" LIMIT $4 FOR UPDATE SKIP LOCKED)
        RETURNING d."id", d."outboxId", d."channel"::text AS "channel", d."target", d."address", d."recipientIds", d."attempts", o."payload",
                  o."event", d."createdAt", d."admittedAt" IS NOT NULL AS "admitted", d."heldNotice",
                  CASE
                    -- The hour's held-back notice is about requests still waiting, not about its own operation.
                    -- The orderer's notice of a fall back too: once approved again (or finished) the later notice tells him.
                    WHEN o."event" = ANY($7::text[]) AND NOT d."heldNotice" AND NOT EXISTS (
                           SELECT 1 FROM "operation" op WHERE op."id" = o."operationId" AND op."state" = 'REQUESTED' AND op."validTo" > now())
                      THEN 'the operation no longer awaits approval'
                    -- The operation fell back to REQUESTED and its approvers were asked again: that round replaces this one.
                    WHEN o."event" = ANY($7::text[]) AND NOT d."heldNotice" AND EXISTS (
                           SELECT 1 FROM "notification_outbox" n WHERE n."operationId" = o."operationId" AND n."event" = o."event" AND n."round" > o."round")
                      THEN $6::text
                    WHEN o."event" = 'admin_session.authorization_requested' AND NOT EXISTS (
                           SELECT 1 FROM "admin_session" a WHERE a."id" = o."adminSessionId" AND a."state" = 'PENDING' AND a."expiresAt" > now())
                      THEN 'the administrative session no longer awaits authorization'
                    WHEN d."channel" = 'EMAIL' AND NOT EXISTS (
                           SELECT 1 FROM "subject" s LEFT JOIN "notification_preference" p ON p."subjectId" = s."id"
                            WHERE s."id"::text = d."target" AND s."enabled" AND COALESCE(p."emailEnabled", true))
                      THEN 'the recipient turned email off or was disabled'
                    WHEN d."channel" = 'EMAIL' AND o."event" = ANY($5::text[]) AND NOT EXISTS (
                           SELECT 1 FROM "subject" s WHERE s."id"::text = d."target" AND s."account" = 'MEMBER')
                      THEN 'the recipient is no longer a proven member account'
                  END AS "staleReason"`,
      [leaseToken, leaseMs, maxAttempts, limit, MEMBERS_ONLY, SUPERSEDED, CAPPED],
    );
  }

  /** SENT, if this claim still holds the lease; false when it was lost (the row was claimed again meanwhile). */
  async markSent(id: string, leaseToken: string): Promise<boolean> {
    const rows = await sqlQuery(
      this.db,
      `UPDATE "notification_delivery" SET "state" = 'SENT', "sentAt" = now(), "leaseToken" = NULL, "leaseUntil" = NULL, "lastError" = NULL
        WHERE "id" = $1::uuid AND "leaseToken" = $2::uuid AND "state" = 'PENDING' RETURNING "id"`,
      [id, leaseToken],
    );
    return rows.length === 1;
  }

  /** SKIPPED (no longer applies), if this claim still holds the lease. */
  async markSkipped(id: string, leaseToken: string, reason: string): Promise<boolean> {
    const rows = await sqlQuery(
      this.db,
      `UPDATE "notification_delivery" SET "state" = 'SKIPPED', "leaseToken" = NULL, "leaseUntil" = NULL, "lastError" = $3
        WHERE "id" = $1::uuid AND "leaseToken" = $2::uuid AND "state" = 'PENDING' RETURNING "id"`,
      [id, leaseToken, reason.slice(0, MAX_ERROR)],
    );
    return rows.length === 1;
  }

  /** A failed attempt: due again after `retryInMs`, or DEAD when `retryInMs` is null. False when the lease was lost. */
  async markFailed(id: string, leaseToken: string, error: string, retryInMs: number | null): Promise<boolean> {
    const rows = await sqlQuery(
      this.db,
      `UPDATE "notification_delivery"
          SET "state" = CASE WHEN $4::double precision IS NULL THEN 'DEAD'::"NotificationDeliveryState" ELSE 'PENDING'::"NotificationDeliveryState" END,
              "nextAttemptAt" = now() + make_interval(secs => COALESCE($4::double precision, 0) / 1000),
              "leaseToken" = NULL, "leaseUntil" = NULL, "lastError" = $3
        WHERE "id" = $1::uuid AND "leaseToken" = $2::uuid AND "state" = 'PENDING' RETURNING "id"`,
      [id, leaseToken, error.slice(0, MAX_ERROR), retryInMs],
    );
    return rows.length === 1;
  }

  /** DEAD for deliveries whose last allowed attempt was claimed and never finished (its dispatcher died). */
  async buryAbandoned(maxAttempts: number): Promise<string[]> {
    const rows = await sqlQuery<{ id: string }>(
      this.db,
      `UPDATE "notification_delivery" SET "state" = 'DEAD', "leaseToken" = NULL, "leaseUntil" = NULL,
              "lastError" = COALESCE("lastError", 'the dispatcher holding the last attempt stopped before finishing it')
        WHERE "state" = 'PENDING' AND "attempts" >= $1 AND "leaseUntil" < now() RETURNING "id"`,
      [maxAttempts],
    );
    return rows.map((r) => r.id);
  }

  /**
   * Deletes events older than `olderThanDays` whose every delivery is finished (SENT, SKIPPED or DEAD), with their
   * deliveries; at most `limit` events per call. Nothing still due is ever deleted.
   */
  async prune(olderThanDays: number, limit = 1000): Promise<number> {
    const rows = await sqlQuery<{ id: string }>(
      this.db,
      `DELETE FROM "notification_outbox" WHERE "id" IN (
         SELECT o."id" FROM "notification_outbox" o
          WHERE o."expandedAt" IS NOT NULL AND o."createdAt" < now() - make_interval(days => $1::int)
            AND NOT EXISTS (SELECT 1 FROM "notification_delivery" d WHERE d."outboxId" = o."id" AND d."state" = 'PENDING')
          ORDER BY o."createdAt" LIMIT $2 FOR UPDATE SKIP LOCKED)
       RETURNING "id"`,
      [olderThanDays, limit],
    );
    return rows.length;
  }

  /**
   * What a metrics scrape reports: deliveries still due or being retried, DEAD ones, the oldest due one's age, and
   * the approval requests held back over their recipient's hourly cap in the last hour.
   */
  async backlog(): Promise<{ pending: number; dead: number; oldestPendingSeconds: number; heldLastHour: number; webhookHeldLastHour: number }> {
    const [row] = await sqlQuery<{ pending: number; dead: number; oldest: number; held: number; webhookHeld: number }>(
      this.db,
      `WITH held AS (SELECT "channel" FROM "notification_delivery" WHERE "heldAt" > now() - interval '1 hour' AND NOT "heldNotice" AND "state" = 'SKIPPED')
       SELECT count(*) FILTER (WHERE "state" = 'PENDING')::int AS "pending", count(*) FILTER (WHERE "state" = 'DEAD')::int AS "dead",
              COALESCE(EXTRACT(EPOCH FROM now() - min("createdAt") FILTER (WHERE "state" = 'PENDING')), 0)::float8 AS "oldest",
              (SELECT count(*)::int FROM held WHERE "channel" = 'EMAIL') AS "held",
              (SELECT count(*)::int FROM held WHERE "channel" = 'WEBHOOK') AS "webhookHeld"
         FROM "notification_delivery" WHERE "state" IN ('PENDING', 'DEAD')`,
    );
    return {
      pending: row?.pending ?? 0,
      dead: row?.dead ?? 0,
      oldestPendingSeconds: Math.max(0, row?.oldest ?? 0),
      heldLastHour: row?.held ?? 0,
      webhookHeldLastHour: row?.webhookHeld ?? 0,
    };
  }

  /** The deliveries of the events about one operation or admin session, oldest first (operators, tests). */
  async deliveriesOf(operationId: string): Promise<DeliveryRow[]> {
    if (!UUID.test(operationId)) return [];
    return sqlQuery<DeliveryRow>(
      this.db,
      `SELECT d."id", d."outboxId", o."event", d."channel"::text AS "channel", d."target", d."address", COALESCE(d."recipientIds", '{}') AS "recipientIds",
              d."state"::text AS "state", d."attempts", d."lastError", d."sentAt"
         FROM "notification_delivery" d JOIN "notification_outbox" o ON o."id" = d."outboxId"
        WHERE (o."operationId" = $1::uuid OR o."adminSessionId" = $1::uuid) ORDER BY d."createdAt", d."id"`,
      [operationId],
    );
  }

  /** The events written about one operation or admin session (tests, operators). */
  async eventsOf(operationId: string): Promise<{ id: string; event: string; round: number; recipientIds: string[]; expanded: boolean }[]> {
    if (!UUID.test(operationId)) return [];
    return sqlQuery(
      this.db,
      `SELECT "id", "event", "round", COALESCE("recipientIds", '{}') AS "recipientIds", "expandedAt" IS NOT NULL AS "expanded"
         FROM "notification_outbox" WHERE ("operationId" = $1::uuid OR "adminSessionId" = $1::uuid) ORDER BY "createdAt", "id"`,
      [operationId],
    );
  }

  async settings(subjectId: string): Promise<NotificationSettings> {
    if (!UUID.test(subjectId)) throw new DataAccessError('not_found', 'subject not found');
    const [row] = await sqlQuery<NotificationSettings & { exists: boolean }>(
      this.db,
      `SELECT s."id" AS "subjectId", p."email", COALESCE(p."emailEnabled", true) AS "emailEnabled", COALESCE(p."webhookEnabled", true) AS "webhookEnabled", p."updatedAt"
         FROM "subject" s LEFT JOIN "notification_preference" p ON p."subjectId" = s."id" WHERE s."id" = $1::uuid`,
      [subjectId],
    );
    if (!row) throw new DataAccessError('not_found', 'subject not found');
    return row;
  }

  /** The subject's own opt-outs (fields left undefined keep their value), with its audit event in the same transaction. */
  setOptOuts(subjectId: string, change: { emailEnabled?: boolean; webhookEnabled?: boolean }, audit: AuditInput): Promise<NotificationSettings> {
    return this.upsert(subjectId, { emailEnabled: change.emailEnabled, webhookEnabled: change.webhookEnabled }, audit);
  }

  /**
   * The address administrators keep on file for the subject (null removes it), audited in the same transaction. With
   * `scope` (the session it runs in) the transaction holds that session, the subject's row locked with its
   * administrators' in id order ({@link holdSession}).
   */
  setAddress(subjectId: string, email: string | null, audit: AuditInput, scope?: SessionScope): Promise<NotificationSettings> {
    return this.upsert(subjectId, { email: email === null ? null : storedAddress(email) }, audit, scope);
  }

  private async upsert(
    subjectId: string,
    change: { email?: string | null; emailEnabled?: boolean; webhookEnabled?: boolean },
    audit: AuditInput,
    scope?: SessionScope,
  ): Promise<NotificationSettings> {
    if (!UUID.test(subjectId)) throw new DataAccessError('not_found', 'subject not found');
    return this.db.transaction(async (tx) => {
      await holdSession(tx, scope, [subjectId]);
      const subject = await tx.$queryRaw<{ id: string }[]>`SELECT "id" FROM "subject" WHERE "id" = ${subjectId}::uuid FOR NO KEY UPDATE`;
      if (subject.length === 0) throw new DataAccessError('not_found', 'subject not found');
      const before = await tx.notificationPreference.findUnique({ where: { subjectId } });
      const row = await tx.notificationPreference.upsert({
        where: { subjectId },
        create: { subjectId, email: change.email ?? null, emailEnabled: change.emailEnabled ?? true, webhookEnabled: change.webhookEnabled ?? true, updatedAt: new Date() },
        update: { email: change.email, emailEnabled: change.emailEnabled, webhookEnabled: change.webhookEnabled, updatedAt: new Date() },
      });
      const view = (p: { email: string | null; emailEnabled: boolean; webhookEnabled: boolean } | null) =>
        p ? { email: p.email, emailEnabled: p.emailEnabled, webhookEnabled: p.webhookEnabled } : { email: null, emailEnabled: true, webhookEnabled: true };
      await appendAuditTx(tx, { ...audit, details: { ...audit.details, subjectId, before: view(before), after: view(row) } });
      return { subjectId, email: row.email, emailEnabled: row.emailEnabled, webhookEnabled: row.webhookEnabled, updatedAt: row.updatedAt };
    });
  }
}
