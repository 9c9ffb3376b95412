import { createTransport, type Transporter } from 'nodemailer';
import type { NotifyConfig, WebhookEndpoint } from './notify-config';
import { DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER, signature, TIMESTAMP_HEADER } from './render';

/** A failed send: `permanent` ones (a 5xx SMTP reply, a 4xx other than 408/429 from a webhook) are not retried. */
export class SendFailure extends Error {
  constructor(
    message: string,
    readonly permanent: boolean,
  ) {
    super(message);
    this.name = 'SendFailure';
  }
}

export interface EmailMessage {
  to: string;
  subject: string;
  text: string;
  deliveryId: string;
  event: string;
}

/** SMTP through nodemailer: plain text only (no HTML to inject into), one recipient per message. */
export class EmailSender {
  private readonly transport: Transporter;
  private readonly domain: string;
  private readonly deadlineMs: number;

  constructor(
    private readonly smtp: NonNullable<NotifyConfig['smtp']>,
    timeoutMs: number,
  ) {
    // The timeouts below are idle timeouts: a relay that trickles a byte now and then never trips them. The whole
    // conversation has a deadline too (inside the dispatcher's lease of at least 3x the timeout).
    this.deadlineMs = 2 * timeoutMs;
    this.domain = /@([^>\s]+)>?\s*$/.exec(smtp.from)?.[1] ?? 'keyserver.invalid';
    this.transport = createTransport({
      host: smtp.host,
      port: smtp.port,
      secure: smtp.tls === 'implicit',
      requireTLS: smtp.tls === 'starttls',
      ignoreTLS: smtp.tls === 'none',
      auth: smtp.user && smtp.password ? { user: smtp.user, pass: smtp.password } : undefined,
      tls: smtp.ca ? { ca: smtp.ca, minVersion: 'TLSv1.2' } : { minVersion: 'TLSv1.2' },
      connectionTimeout: timeoutMs,
      greetingTimeout: timeoutMs,
      socketTimeout: timeoutMs,
      disableFileAccess: true,
      disableUrlAccess: true,
    });
  }

  async send(m: EmailMessage): Promise<void> {
    const deadline = AbortSignal.timeout(this.deadlineMs);
    try {
      await this.transport.sendMail({
        // nodemailer closes the connection when this aborts (its types predate the option).
        ...({ signal: deadline } as object),
        from: this.smtp.from,
        to: m.to,
        subject: m.subject,
        text: m.text,
        // The delivery id is the idempotency key: the same Message-ID on every retry, so mail systems and readers dedupe.
        messageId: `<${m.deliveryId}@${this.domain}>`,
        headers: { 'X-Keyserver-Delivery': m.deliveryId, 'X-Keyserver-Event': m.event, 'Auto-Submitted': 'auto-generated' },
      });
    } catch (err) {
      if (deadline.aborted) throw new SendFailure(`smtp timeout: not done within ${this.deadlineMs} ms`, false);
      const e = err as { responseCode?: number; code?: string; message?: string };
      const code = typeof e.responseCode === 'number' ? e.responseCode : undefined;
      throw new SendFailure(`smtp ${code ?? e.code ?? 'error'}: ${(e.message ?? String(err)).split('\n')[0]}`, code !== undefined && code >= 500);
    }
  }

  close(): void {
    this.transport.close();
  }
}

/** POSTs a body to one endpoint, signed (HMAC-SHA256 over timestamp + body) when the endpoint has a secret. */
export async function postWebhook(
  endpoint: WebhookEndpoint,
  body: string,
  meta: { deliveryId: string; event: string; timeoutMs: number; now?: () => number },
): Promise<void> {
  const timestamp = Math.floor((meta.now ?? Date.now)() / 1000);
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    'user-agent': 'keyserver-notifications/1',
    [DELIVERY_HEADER]: meta.deliveryId,
    'idempotency-key': meta.deliveryId,
    [EVENT_HEADER]: meta.event,
  };
  if (endpoint.secret) {
    headers[TIMESTAMP_HEADER] = String(timestamp);
    headers[SIGNATURE_HEADER] = signature(endpoint.secret, timestamp, body);
  }
  let status: number;
  try {
    // No redirects: a signed body and a secret URL go to the configured endpoint only.
    const r = await fetch(endpoint.url, { method: 'POST', headers, body, redirect: 'manual', signal: AbortSignal.timeout(meta.timeoutMs) });
    status = r.status;
    await r.body?.cancel().catch(() => undefined);
  } catch (err) {
    const e = err as { name?: string; message?: string; cause?: { code?: string } };
    throw new SendFailure(`webhook ${e.name === 'TimeoutError' ? 'timeout' : (e.cause?.code ?? e.message ?? 'error')}`, false);
  }
  if (status >= 200 && status < 300) return;
  throw new SendFailure(`webhook HTTP ${status}`, status < 500 && status !== 408 && status !== 429);
}
