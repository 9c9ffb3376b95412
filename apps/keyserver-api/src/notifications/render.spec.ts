import fc from 'fast-check';
import type { OperationNoticePayload } from '@keyserver/data-access';
import { emailText, HELD_NOTICE_TITLE, HELD_WEBHOOK_EVENT, heldNoticeText, heldWebhookBody, notificationBody, oneLine, signature, title, webhookBody } from './render';

const HOSTILE = 'Release 4.2\r\nBcc: victim@example.test <!channel> [approve](https://evil.example/approve) <b>x</b>';

const payload = (over: Partial<OperationNoticePayload> = {}): OperationNoticePayload => ({
  type: 'operation.approval_requested',
  version: 1,
  occurredAt: '2026-12-05T10:00:00.000Z',
  operation: {
    id: '11111111-2222-4333-8444-555555555555',
    description: HOSTILE,
    state: 'REQUESTED',
    orderer: { subjectId: '66666666-2222-4333-8444-555555555555', displayName: 'Ci\u0000Pipeline' },
    validFrom: '2026-12-05T10:00:00.000Z',
    validTo: '2026-12-05T11:00:00.000Z',
    keys: [{ keyid: 'fw-demo', usagesAllowed: 3, requiredApprovers: 2 }],
    rejectionReason: null,
  },
  ...over,
});
const recipients = [{ subjectId: 'a', displayName: 'Alice' }];

describe(webhookBody.name, () => {
  it('puts no control character in a title or summary line (no header injection)', () => {
    // eslint-disable-next-line no-control-regex
    expect(title(payload())).not.toMatch(/[\r\n\u0000]/);
    expect(oneLine('a\u2028b\u0085c', 10)).toBe('a b c');
    expect(oneLine('x'.repeat(20), 10)).toHaveLength(10);
  });

  it('writes an email that links to the SPA page only and carries no credential', () => {
    const text = emailText(payload(), recipients[0], 'https://ks.example.test', 'd-1');
    expect(text).toContain('https://ks.example.test/operations/11111111-2222-4333-8444-555555555555');
    expect(text).toContain('sign-in required');
    expect(text).not.toMatch(/token|code=|secret/i);
    // Outside the orderer's quoted description, the only URL is the SPA page's.
    const own = text.split('\n').filter((l) => !l.startsWith('Description (written by the orderer)'));
    expect(own.join('\n').match(/https?:\/\/\S+/g)).toEqual(['https://ks.example.test/operations/11111111-2222-4333-8444-555555555555']);
    expect(text.split('\n').filter((l) => l.startsWith('Bcc:'))).toEqual([]);
  });

  it.each<[string, number | undefined, string, boolean, OperationNoticePayload['type']]>([
    ['ok round 1 as it always was: no round member, the first title', undefined, 'Approval requested:', false, 'operation.approval_requested'],
    ['ok a later round names itself and why it came', 2, 'Approval requested again:', true, 'operation.approval_requested'],
    ['ok the orderer\'s notice of a fall back names itself, why it came and its round', 3, 'Operation needs approval again:', true, 'operation.reopened'],
  ])('%s', (_n, round, heading, again, type) => {
    const p = payload({ type, ...(round ? { round } : {}) });
    expect(title(p)).toContain(heading);
    expect(emailText(p, recipients[0], 'https://ks.example.test', 'd-3').includes('was withdrawn')).toBe(again);
    const body = webhookBody('keyserver', notificationBody('d-3', p, recipients, 'https://ks.example.test'));
    expect(JSON.parse(body).round).toBe(round);
    expect(webhookBody('slack', notificationBody('d-3', p, recipients, null))).toContain(`[Keyserver] ${heading}`);
  });

  it('writes the held-back notice with the cap and the console link only: no operation, nothing the orderer wrote', () => {
    const text = heldNoticeText({ subjectId: 'a', displayName: 'Alice\r\nBcc: x@example.test' }, 'https://ks.example.test', 20, 'd-2');
    expect(HELD_NOTICE_TITLE).toBe('[Keyserver] Further approval requests held back');
    expect(text).toContain('20 approval(s) within the last hour');
    expect(text.match(/https?:\/\/\S+/g)).toEqual(['https://ks.example.test/operations']);
    expect(text).not.toMatch(/token|code=|secret|Release|evil/i);
    expect(text.split('\n').filter((l) => l.startsWith('Bcc:'))).toEqual([]);
  });

  it.each(['keyserver', 'slack', 'teams'] as const)('writes the %s endpoint\'s held-back summary with the cap and the console link only: no operation, nothing the orderer wrote', (format) => {
    const body = heldWebhookBody(format, 'delivery-1', '2026-12-05T10:00:00.000Z', 'https://ks.example.test', 7);
    expect(body).toContain('https://ks.example.test/operations');
    expect(body).not.toMatch(/operations\/[0-9a-f]|evil|approve\)|channel>|Release/);
    if (format === 'keyserver') {
      expect(body).toBe('{"deliveryId":"delivery-1","hourlyMax":7,"occurredAt":"2026-12-05T10:00:00.000Z","type":"' + HELD_WEBHOOK_EVENT + '","url":"https://ks.example.test/operations","version":1}');
    } else {
      expect(body).toContain(HELD_NOTICE_TITLE);
      expect(body).toContain('7 approval request(s)');
    }
    // The same bytes on every retry (receivers dedupe on the delivery id; the body does not change).
    expect(heldWebhookBody(format, 'delivery-1', '2026-12-05T10:00:00.000Z', 'https://ks.example.test', 7)).toBe(body);
  });

  it('gives the keyserver format one canonical body (sorted keys, no whitespace) that the signature covers', () => {
    const body = webhookBody('keyserver', notificationBody('d-1', payload(), recipients, null));
    const sorted = (v: unknown): unknown =>
      Array.isArray(v) ? v.map(sorted) : v && typeof v === 'object' ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, sorted((v as Record<string, unknown>)[k])])) : v;
    expect(body).toBe(JSON.stringify(sorted(JSON.parse(body))));
    expect(body.startsWith('{"deliveryId":"d-1","occurredAt"')).toBe(true);
    expect(body).not.toMatch(/\n|": /);
    expect(signature('k'.repeat(32), 1_700_000_000, body)).toMatch(/^v1=[0-9a-f]{64}$/);
    expect(signature('k'.repeat(32), 1_700_000_001, body)).not.toBe(signature('k'.repeat(32), 1_700_000_000, body));
  });

  it('renders Slack text with mrkdwn escaped and blocks in plain_text, so a description makes no link or mention', () => {
    const slack = JSON.parse(webhookBody('slack', notificationBody('d-1', payload(), recipients, 'https://ks.example.test'))) as {
      text: string;
      blocks: { type: string; text?: { type: string }; elements?: { url: string }[] }[];
    };
    expect(slack.text).not.toMatch(/<!channel>|<b>/);
    expect(slack.text).toContain('&lt;!channel&gt;');
    expect(slack.blocks.filter((b) => b.text).every((b) => b.text?.type === 'plain_text')).toBe(true);
    expect(slack.blocks.find((b) => b.type === 'actions')?.elements?.[0].url).toBe('https://ks.example.test/operations/11111111-2222-4333-8444-555555555555');
  });

  it('renders Teams as one Adaptive Card whose user text sits in TextRuns (never parsed as markdown)', () => {
    const teams = JSON.parse(webhookBody('teams', notificationBody('d-1', payload(), recipients, null))) as {
      type: string;
      attachments: { contentType: string; content: { type: string; body: { type: string; inlines: { type: string; text: string }[] }[]; actions: unknown[] } }[];
    };
    expect(teams.type).toBe('message');
    expect(teams.attachments[0].contentType).toBe('application/vnd.microsoft.card.adaptive');
    const card = teams.attachments[0].content;
    expect(card.type).toBe('AdaptiveCard');
    expect(card.body.every((b) => b.type === 'RichTextBlock' && b.inlines.every((i) => i.type === 'TextRun'))).toBe(true);
    expect(card.actions).toEqual([]);
  });

  it.each([
    ['fail a right-to-left override in the description', { description: 'Release \u202egnp.exe\u202c' }, 'Release \\u{202e}gnp.exe\\u{202c}'],
    ['fail isolates and marks', { description: 'usages \u20661\u2069\u200f0' }, 'usages \\u{2066}1\\u{2069}\\u{200f}0'],
    ['fail zero-width characters in the orderer name', { orderer: { subjectId: 'o', displayName: 'Ali\u200bce\ufeffB' } }, 'Ali\\u{200b}ce\\u{feff}B'],
    ['fail tag characters in the rejection reason', { rejectionReason: 'ok\u{E0041}' }, 'ok\\u{e0041}'],
  ])('%s: every line a person reads names the character instead (Trojan Source)', (_n, over, shown) => {
    const p = payload({ type: 'operation.rejected', operation: { ...payload().operation, ...over } });
    const teams = JSON.parse(webhookBody('teams', notificationBody('d', p, recipients, null))) as { attachments: { content: { body: { inlines: { text: string }[] }[] } }[] };
    const slack = JSON.parse(webhookBody('slack', notificationBody('d', p, recipients, null))) as { text: string; blocks: { text?: { text: string } }[] };
    const read = [
      title(p),
      emailText(p, recipients[0], null, 'd'),
      slack.text,
      ...slack.blocks.map((b) => b.text?.text ?? ''),
      ...teams.attachments[0].content.body.flatMap((b) => b.inlines.map((i) => i.text)),
    ];
    for (const text of read) expect(text).not.toMatch(/\p{Cf}/u);
    expect(read.join('\n')).toContain(shown);
  });

  it('asks administrators to authorize a session without letting the message authorize it', () => {
    const session = {
      type: 'admin_session.authorization_requested' as const,
      version: 1 as const,
      occurredAt: '2026-12-05T10:00:00.000Z',
      adminSession: { id: 's-1', description: HOSTILE, creator: { subjectId: 'c', displayName: 'Ada' }, requiredApprovals: 1, powers: false, expiresAt: '2026-12-05T11:00:00.000Z' },
    };
    const text = emailText(session, recipients[0], 'https://ks.example.test', 'd');
    expect(title(session)).toMatch(/^\[Keyserver\] Administrative session needs your authorization: Release 4\.2 Bcc/);
    expect(text).toContain('this message cannot authorize anything');
    expect(text).toContain('https://ks.example.test/admin-sessions');
    expect(text.split('\n').filter((l) => l.startsWith('Bcc:'))).toEqual([]);
    const body = JSON.parse(webhookBody('keyserver', notificationBody('d', session, recipients, null))) as { adminSession: { id: string }; url: null };
    expect(body).toMatchObject({ adminSession: { id: 's-1' }, url: null });
  });

  it.each([
    ['operation.approval_requested', 'Approval requested'],
    ['operation.approved', 'can be used now'],
    ['operation.rejected', 'rejected'],
  ] as const)('titles %s', (type, words) => {
    expect(title(payload({ type }))).toContain(words);
  });

  it('keeps every line and every escape whatever the orderer writes (property)', () => {
    const base = emailText(payload({ operation: { ...payload().operation, description: 'x' } }), recipients[0], 'https://ks.example.test', 'd').split('\n').length;
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 300 }), fc.string({ unit: 'binary', maxLength: 60 }), (description, name) => {
        const p = payload({ operation: { ...payload().operation, description, orderer: { subjectId: 'o', displayName: name } } });
        // eslint-disable-next-line no-control-regex
        expect(title(p)).not.toMatch(/[\u0000-\u001f\u007f-\u009f\u2028\u2029\p{Cf}]|\p{Cs}/u);
        // The orderer cannot add or remove a line of the email (no forged header-like or link lines).
        expect(emailText(p, recipients[0], 'https://ks.example.test', 'd').split('\n')).toHaveLength(base);
        const slack = JSON.parse(webhookBody('slack', notificationBody('d', p, recipients, null))) as { text: string };
        expect(slack.text).not.toMatch(/[<>]/);
        const body = JSON.parse(webhookBody('keyserver', notificationBody('d', p, recipients, null))) as OperationNoticePayload;
        expect(body.operation.description).toBe(description);
      }),
      { numRuns: 300 },
    );
  });
});
