import { createHmac } from 'node:crypto';
import { visibleText } from '@keyserver/api-contract/visible-text';
import { canonicalJson } from '@keyserver/audit-chain';
import type { NoticePayload, NotificationRecipient } from '@keyserver/data-access';

// Everything a notification says, in one place (docs/notifications.md). A message informs; it never lets its reader
// act: no token, no one-click approve link, only a link to the SPA page, which needs a login like any other visit.

/** The body of a `keyserver`-format webhook call: the event, the delivery id (idempotency key), the recipients, the SPA link. */
export type NotificationBody = NoticePayload & {
  deliveryId: string;
  recipients: NotificationRecipient[];
  url: string | null;
};

export function notificationBody(deliveryId: string, payload: NoticePayload, recipients: NotificationRecipient[], spaUrl: string | null): NotificationBody {
  return { ...payload, deliveryId, recipients, url: pageUrl(spaUrl, payload) };
}

/** The id of the operation or admin session an event is about. */
export function aboutId(p: NoticePayload): string {
  return 'operation' in p ? p.operation.id : p.adminSession.id;
}

/** The SPA page of what the event is about (viewing it needs a sign-in; it acts on nothing). */
export function pageUrl(spaUrl: string | null, p: NoticePayload): string | null {
  if (!spaUrl) return null;
  return 'operation' in p ? `${spaUrl}/operations/${encodeURIComponent(p.operation.id)}` : `${spaUrl}/admin-sessions`;
}

/** Request headers that carry the signature (docs/notifications.md "Verifying a webhook"). */
export const SIGNATURE_HEADER = 'x-keyserver-signature';
export const TIMESTAMP_HEADER = 'x-keyserver-timestamp';
export const DELIVERY_HEADER = 'x-keyserver-delivery';
export const EVENT_HEADER = 'x-keyserver-event';

/** `v1=` + hex HMAC-SHA256(secret, `${timestamp}.${body}`): the timestamp is signed with the body, so a replay is refused once it is older than the receiver's window. */
export function signature(secret: string, timestamp: number, body: string): string {
  return `v1=${createHmac('sha256', secret).update(`${timestamp}.${body}`, 'utf8').digest('hex')}`;
}

/**
 * Text as safe to show as one line: line breaks and other controls become a space (no header or markdown line
 * tricks); bidi, zero-width and other hidden characters are named as `\u{hex}` (ADR 0047); bounded.
 */
export function oneLine(text: string, max: number): string {
  // eslint-disable-next-line no-control-regex
  const flat = visibleText(text.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]+/g, ' ').trim());
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}

const TITLES: Record<NoticePayload['type'], string> = {
  'operation.approval_requested': 'Approval requested',
  'operation.approved': 'Operation approved: it can be used now',
  'operation.rejected': 'Operation rejected',
  'operation.reopened': 'Operation needs approval again',
  'admin_session.authorization_requested': 'Administrative session needs your authorization',
};

/** A later round of approval requests: the operation fell back to REQUESTED when an approval was withdrawn. */
const askedAgain = (p: NoticePayload): boolean => p.type === 'operation.approval_requested' && (p.round ?? 1) > 1;

export function title(p: NoticePayload): string {
  const description = 'operation' in p ? p.operation.description : p.adminSession.description;
  return `[Keyserver] ${askedAgain(p) ? 'Approval requested again' : TITLES[p.type]}: ${oneLine(description, 80)}`;
}

/** The lines every format shows (plain text; user-written text is quoted as data, never as markup). */
export function summaryLines(p: NoticePayload): string[] {
  if (!('operation' in p)) {
    const a = p.adminSession;
    return [
      `Administrative session ${a.id}`,
      `Opened by: ${oneLine(a.creator.displayName, 200)}`,
      `Description (written by the administrator): "${oneLine(a.description, 500)}"`,
      `Authorizations required: ${a.requiredApprovals}`,
      ...(a.powers ? ['Powers: this session may make or unmake administrators and approvers, and lower a key\'s required approvers'] : []),
      `Expires: ${a.expiresAt}`,
    ];
  }
  const o = p.operation;
  const lines = [
    `Operation ${o.id}`,
    `Ordered by: ${oneLine(o.orderer.displayName, 200)}`,
    `Description (written by the orderer): "${oneLine(o.description, 500)}"`,
    `Valid: ${o.validFrom} to ${o.validTo}`,
    ...o.keys.map((k) => `Key ${oneLine(k.keyid, 128)}: ${k.usagesAllowed} use(s), ${k.requiredApprovers} approval(s) required`),
  ];
  if (p.type === 'operation.rejected' && o.rejectionReason) lines.push(`Reason: "${oneLine(o.rejectionReason, 500)}"`);
  return lines;
}

const ACTION: Record<NoticePayload['type'], string> = {
  'operation.approval_requested': 'Your approval is requested. Review it in the Keyserver after signing in; this message cannot approve anything.',
  'operation.approved': 'Every key has its approvals: the operation can be used within its window.',
  'operation.rejected': 'The operation was rejected and cannot be used.',
  'operation.reopened':
    'An approval your operation had was withdrawn (its approver lost the right to approve), so it cannot be used until it is approved again. The approvers who may still approve it were asked; you will be told when it is approved.',
  'admin_session.authorization_requested':
    'An administrator opened a four-eyes session that needs another administrator. If you expected it, authorize it in the Keyserver after signing in; this message cannot authorize anything.',
};

const ASKED_AGAIN =
  'An approval this operation had was withdrawn (its approver lost the right to approve), so it needs approval again. Review it in the Keyserver after signing in; this message cannot approve anything.';

/** The plain-text email to one recipient. */
export function emailText(p: NoticePayload, recipient: NotificationRecipient | undefined, spaUrl: string | null, deliveryId: string): string {
  const url = pageUrl(spaUrl, p);
  return [
    `Hello ${oneLine(recipient?.displayName ?? '', 200)},`,
    '',
    askedAgain(p) ? ASKED_AGAIN : ACTION[p.type],
    '',
    ...summaryLines(p),
    '',
    url ? `Open it in the Keyserver (sign-in required): ${url}` : 'Open the Keyserver admin UI to review it (sign-in required).',
    '',
    '--',
    'operation' in p
      ? 'You get this because you may approve operations on these keys, or because you ordered this one.'
      : 'You get this because you are a Keyserver administrator.',
    'You can turn these messages off in the Keyserver (My notifications) or with PUT /api/v1/me/notifications.',
    `Delivery ${deliveryId}`,
  ].join('\n');
}

/**
 * The exact bytes POSTed to an endpoint of each format. keyserver: the canonical JSON of {@link NotificationBody};
 * slack: an incoming-webhook message (text + blocks); teams: a Workflows/incoming-webhook message with one Adaptive Card.
 */
export function webhookBody(format: 'keyserver' | 'slack' | 'teams', body: NotificationBody): string {
  if (format === 'keyserver') return canonicalJson(body);
  const who = body.recipients.map((r) => oneLine(r.displayName, 100)).join(', ');
  const label = body.type === 'operation.approval_requested' ? 'Approvers' : body.type === 'admin_session.authorization_requested' ? 'Administrators asked' : 'For';
  return chatBody(format, title(body), [...summaryLines(body), `${label}: ${who}`], body.url);
}

/** A Slack or Teams message: a heading, plain-text lines, and at most one button to the SPA. */
function chatBody(format: 'slack' | 'teams', heading: string, lines: string[], url: string | null): string {
  if (format === 'slack') {
    const text = [heading, ...lines, url ? `Review (sign-in required): ${url}` : ''].filter(Boolean).join('\n');
    return canonicalJson({
      text: slackEscape(text),
      blocks: [
        { type: 'header', text: { type: 'plain_text', text: oneLine(heading, 150) } },
        { type: 'section', text: { type: 'plain_text', text: lines.join('\n') } },
        ...(url ? [{ type: 'actions', elements: [{ type: 'button', text: { type: 'plain_text', text: 'Open in Keyserver' }, url }] }] : []),
      ],
    });
  }
  return canonicalJson({
    type: 'message',
    attachments: [
      {
        contentType: 'application/vnd.microsoft.card.adaptive',
        content: {
          $schema: 'http://adaptivecards.io/schemas/adaptive-card.json',
          type: 'AdaptiveCard',
          version: '1.4',
          body: [
            { type: 'RichTextBlock', inlines: [{ type: 'TextRun', text: heading, weight: 'Bolder', size: 'Medium' }] },
            // RichTextBlock/TextRun text is never parsed as markdown: a description cannot become a link or markup.
            { type: 'RichTextBlock', inlines: lines.map((l) => ({ type: 'TextRun', text: `${l}\n` })) },
          ],
          actions: url ? [{ type: 'Action.OpenUrl', title: 'Open in Keyserver', url }] : [],
        },
      },
    ],
  });
}

/** Slack mrkdwn in `text`: &, <, > escaped so a description cannot make links or mentions (<!channel>). */
function slackEscape(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** The subject of the hour's one notice that further approval requests to a recipient were held back. */
export const HELD_NOTICE_TITLE = '[Keyserver] Further approval requests held back';

/**
 * The short notice sent instead of the first approval request over the recipient's hourly cap. It names no
 * operation and quotes nothing an orderer wrote (a flood's descriptions are the attacker's text): only the cap and
 * the console's operations page.
 */
export function heldNoticeText(recipient: NotificationRecipient | undefined, spaUrl: string | null, hourlyMax: number, deliveryId: string): string {
  return [
    `Hello ${oneLine(recipient?.displayName ?? '', 200)},`,
    '',
    `You were asked for ${hourlyMax} approval(s) within the last hour. Further approval requests to you are held back (not mailed) until fewer than ${hourlyMax} were mailed to you in the past hour.`,
    'Nothing is lost: every operation waiting for your approval is listed in the Keyserver console. Many requests in a short time may be a mistake or abuse by an orderer; check them before approving.',
    '',
    spaUrl ? `Open the console (sign-in required): ${spaUrl}/operations` : 'Open the Keyserver admin UI to review them (sign-in required).',
    '',
    '--',
    'You get this because you may approve operations on Keyserver keys.',
    'You can turn these messages off in the Keyserver (My notifications) or with PUT /api/v1/me/notifications.',
    `Delivery ${deliveryId}`,
  ].join('\n');
}

/** `X-Keyserver-Event` and `type` of the one summary call per endpoint and hour past NOTIFY_WEBHOOK_HOURLY_MAX. */
export const HELD_WEBHOOK_EVENT = 'notification.approval_requests_held';

/**
 * The body of the summary call sent instead of the first approval request over an endpoint's hourly cap. Like the
 * email notice it names no operation and carries nothing an orderer wrote (the flood's descriptions are the
 * attacker's text): the cap and the console's operations page. keyserver format: canonical JSON
 * `{deliveryId, hourlyMax, occurredAt, type, url, version}` (`occurredAt`: the held request's event, so a retry has
 * the same body).
 */
export function heldWebhookBody(format: 'keyserver' | 'slack' | 'teams', deliveryId: string, occurredAt: string, spaUrl: string | null, hourlyMax: number): string {
  const url = spaUrl ? `${spaUrl}/operations` : null;
  if (format === 'keyserver') return canonicalJson({ deliveryId, hourlyMax, occurredAt, type: HELD_WEBHOOK_EVENT, url, version: 1 });
  return chatBody(format, HELD_NOTICE_TITLE, [
    `${hourlyMax} approval request(s) were posted here within the last hour. Further approval requests are held back (not posted here) until fewer than ${hourlyMax} were posted in the past hour.`,
    'Nothing is lost: every operation waiting for approval is listed in the Keyserver console,. Many requests in a short time may be a mistake or abuse by an orderer; check them before approving.',
  ], url);
}
