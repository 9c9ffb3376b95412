import type { Logger } from 'pino';
import type { ClaimedDelivery, NotificationRepository } from '@keyserver/data-access';
import { PeriodicJob } from '../common/periodic-job';
import type { NotifyConfig } from './notify-config';
import { aboutId, emailText, HELD_NOTICE_TITLE, HELD_WEBHOOK_EVENT, heldNoticeText, heldWebhookBody, notificationBody, title, webhookBody } from './render';
import { EmailSender, postWebhook, SendFailure } from './senders';

/** What one pass did (tests and logs). */
export interface DispatchPass {
  expanded: number;
  sent: number;
  skipped: number;
  retried: number;
  dead: number;
  lost: number;
}

/** Exponential backoff: base * 2^(attempt-1), capped, with ±20 % jitter so replicas do not retry in step. */
export function backoffMs(attempt: number, baseMs: number, maxMs: number, random = Math.random): number {
  const exact = Math.min(maxMs, baseMs * 2 ** Math.min(30, attempt - 1));
  return Math.round(exact * (0.8 + 0.4 * random()));
}

/**
 * Sends what the outbox holds. Every replica runs one, on its OWN small pool (NOTIFY_DB_POOL_SIZE) so it never takes
 * a connection the sign path needs; it holds no transaction or lock while it talks to SMTP or a webhook (claim and
 * completion are short statements; the lease keeps other replicas off the row meanwhile).
 */
export class NotificationDispatcher {
  private readonly email: EmailSender | null;
  private readonly job = new PeriodicJob(() => this.run());
  private stopped = false;
  private lastPrune = 0;

  /** `repo` is built by the composition root on the dispatcher's own pool (main.ts). */
  constructor(
    private readonly repo: NotificationRepository,
    private readonly logger: Logger,
    private readonly cfg: NotifyConfig,
  ) {
    this.email = cfg.smtp ? new EmailSender(cfg.smtp, cfg.sendTimeoutMs) : null;
  }

  start(): void {
    this.job.start(this.cfg.pollMs);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.job.stop();
    this.email?.close();
  }

  /** One pass (never two at once in a process): expand new events, bury abandoned last attempts, send what is due. Never throws. */
  pass(): Promise<DispatchPass> {
    return this.job.pass();
  }

  private async run(): Promise<DispatchPass> {
    const result: DispatchPass = { expanded: 0, sent: 0, skipped: 0, retried: 0, dead: 0, lost: 0 };
    try {
      const channels = { email: this.email !== null, webhooks: this.cfg.webhooks.map((w) => w.name) };
      for (const id of await this.repo.buryAbandoned(this.cfg.maxAttempts)) {
        result.dead += 1;
        this.logger.error({ deliveryId: id }, 'notification delivery is dead: its last attempt was abandoned');
      }
      // Hourly: finished events past their retention go (every replica may do it; SKIP LOCKED keeps them apart).
      if (Date.now() - this.lastPrune > 3_600_000) {
        this.lastPrune = Date.now();
        const pruned = await this.repo.prune(this.cfg.retentionDays);
        if (pruned > 0) this.logger.info({ pruned, retentionDays: this.cfg.retentionDays }, 'old notification events deleted');
      }
      // Expansion and sending interleave, so a large backlog of events does not hold back the first sends.
      while (!this.stopped) {
        const batch = await this.repo.expand(channels);
        result.expanded += batch.length;
        for (const e of batch) {
          if (e.event.endsWith('_requested') && e.recipients === 0) {
            this.logger.warn({ event: e.event, about: e.about }, 'an approval is needed but nobody can give it (no enabled user with the right): nobody was notified');
          }
        }
        // Webhook calls are capped per endpoint URL (canonical), not per name: two names for one receiver share its cap.
        const claimed = await this.repo.claim(this.cfg.leaseMs, this.cfg.maxAttempts, 10, this.cfg.recipientHourlyMax, this.cfg.webhookHourlyMax, this.cfg.webhooks);
        await Promise.all(claimed.map((d) => this.deliver(d, result)));
        if (batch.length === 0 && claimed.length === 0) break;
      }
    } catch (err) {
      this.logger.warn({ err: (err as Error).message }, 'notification dispatcher could not finish a pass; will retry');
    }
    return result;
  }

  private async deliver(d: ClaimedDelivery, result: DispatchPass): Promise<void> {
    if (d.staleReason) {
      // A retry (or an old backlog) that no longer applies: the operation was decided, or the recipient opted out;
      // or an approval request over its recipient's or endpoint's hourly cap (the notice of that hour went or goes instead).
      if (await this.repo.markSkipped(d.id, d.leaseToken, d.staleReason)) result.skipped += 1;
      return;
    }
    let failure: SendFailure | null = null;
    try {
      await this.send(d);
    } catch (err) {
      failure = err instanceof SendFailure ? err : new SendFailure((err as Error).message, false);
    }
    const log = { deliveryId: d.id, channel: d.channel, target: d.target, event: d.payload.type, about: aboutId(d.payload), attempt: d.attempts };
    if (!failure) {
      if (await this.repo.markSent(d.id, d.leaseToken)) {
        result.sent += 1;
        this.logger.info(log, 'notification sent');
      } else {
        result.lost += 1;
        this.logger.warn(log, 'notification sent after its lease ran out (receivers dedupe on the delivery id)');
      }
      return;
    }
    const dead = failure.permanent || d.attempts >= this.cfg.maxAttempts;
    const retryIn = dead ? null : backoffMs(d.attempts, this.cfg.retryBaseMs, this.cfg.retryMaxMs);
    if (!(await this.repo.markFailed(d.id, d.leaseToken, failure.message, retryIn))) {
      result.lost += 1;
      return;
    }
    if (dead) {
      result.dead += 1;
      this.logger.error({ ...log, error: failure.message }, 'notification delivery is dead');
    } else {
      result.retried += 1;
      this.logger.warn({ ...log, error: failure.message, retryInMs: retryIn }, 'notification delivery failed; will retry');
    }
  }

  private async send(d: ClaimedDelivery): Promise<void> {
    if (d.channel === 'EMAIL') {
      if (!this.email) throw new SendFailure('SMTP is not configured (SMTP_HOST)', true);
      if (!d.address) throw new SendFailure('no address', true);
      await this.email.send({
        to: d.address,
        subject: d.heldNotice ? HELD_NOTICE_TITLE : title(d.payload),
        text: d.heldNotice ? heldNoticeText(d.recipients[0], this.cfg.spaUrl, this.cfg.recipientHourlyMax, d.id) : emailText(d.payload, d.recipients[0], this.cfg.spaUrl, d.id),
        deliveryId: d.id,
        event: d.payload.type,
      });
      return;
    }
    const endpoint = this.cfg.webhooks.find((w) => w.name === d.target);
    if (!endpoint) throw new SendFailure(`webhook endpoint "${d.target}" is no longer configured`, true);
    if (d.heldNotice) {
      // The endpoint's hourly cap was reached: the one summary of that hour instead of this request.
      const body = heldWebhookBody(endpoint.format, d.id, d.payload.occurredAt, this.cfg.spaUrl, this.cfg.webhookHourlyMax);
      await postWebhook(endpoint, body, { deliveryId: d.id, event: HELD_WEBHOOK_EVENT, timeoutMs: this.cfg.sendTimeoutMs });
      return;
    }
    const body = webhookBody(endpoint.format, notificationBody(d.id, d.payload, d.recipients, this.cfg.spaUrl));
    await postWebhook(endpoint, body, { deliveryId: d.id, event: d.payload.type, timeoutMs: this.cfg.sendTimeoutMs });
  }
}
