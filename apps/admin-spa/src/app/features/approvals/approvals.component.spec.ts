import { provideHttpClient, withInterceptors } from '@angular/common/http';
import { HttpTestingController, provideHttpClientTesting } from '@angular/common/http/testing';
import { TestBed, type ComponentFixture } from '@angular/core/testing';
import { provideRouter } from '@angular/router';
import { MatDialog } from '@angular/material/dialog';
import { of } from 'rxjs';
import { csrfInterceptor } from '../../core/csrf.interceptor';
import { PROBLEM_MESSAGES } from '../../core/problem-messages';
import { KEY_LIMITS, opKey, operation } from '../../../testing/fixtures';
import { ApproveDialogComponent } from './approve-dialog.component';
import { formatDateTime } from '../../core/datetime';
import { ApprovalsComponent } from './approvals.component';
import { RejectDialogComponent } from './reject-dialog.component';

describe(ApprovalsComponent.name, () => {
  let ctrl: HttpTestingController;
  let dialogResult: string | undefined;
  let opened: unknown[];

  beforeEach(() => {
    opened = [];
    dialogResult = undefined;
    TestBed.configureTestingModule({
      providers: [
        provideHttpClient(withInterceptors([csrfInterceptor])),
        provideHttpClientTesting(),
        provideRouter([]),
        // The reject dialog itself is tested in RejectDialogComponent's spec.
        { provide: MatDialog, useValue: { open: (c: unknown) => (opened.push(c), { afterClosed: () => of(dialogResult) }) } },
      ],
    });
    ctrl = TestBed.inject(HttpTestingController);
  });

  afterEach(() => ctrl.verify());

  async function render(items = [operation()], nextCursor: string | null = null): Promise<ComponentFixture<ApprovalsComponent>> {
    const fixture = TestBed.createComponent(ApprovalsComponent);
    const req = ctrl.expectOne((r) => r.url === '/api/v1/operations' && r.params.get('awaiting') === 'me' && !r.params.has('cursor'));
    req.flush({ items, nextCursor });
    await fixture.whenStable();
    return fixture;
  }

  const text = (f: ComponentFixture<unknown>) => (f.nativeElement as HTMLElement).textContent ?? '';
  const button = (f: ComponentFixture<unknown>, label: string, scope: ParentNode = f.nativeElement as HTMLElement) =>
    [...scope.querySelectorAll('button, a')].find((b) => b.textContent?.trim() === label) as HTMLButtonElement | undefined;

  it('lists what an approver decides on: orderer, description, keys, usages, window and digests', async () => {
    const f = await render([operation({ description: 'Sign bootloader 7.1', keys: [opKey({ keyid: 'fw-boot', usagesAllowed: 5, usagesUsed: 1, requiredApprovers: 2, approvals: 0, approvalsMissing: 2, approvedBy: [] })] })]);
    const t = text(f);
    expect(t).toContain('Sign bootloader 7.1');
    expect(t).toContain('Otto Orderer');
    expect(t).toContain('fw-boot');
    expect(t).toContain('1 / 5');
    expect(t).toContain('0 / 2');
    expect(t).toContain('1 declared digest');
    // Dates by the one policy (core/datetime.spec.ts pins locale and zone): local, four-digit year, zone named.
    expect(t).toContain(formatDateTime(operation().validFrom));
    expect(t).toMatch(/2026/);
    expect(t).toContain('Production');
    expect(t).toContain('FW · EC_P256 / SHA256 · product model-x');
    expect(t).toContain('Still needed: 2 more approvers of fw-boot');
  });

  it('names who approved already and warns when a production operation declares no digest', async () => {
    const f = await render([operation({ digests: [] })]);
    const t = text(f).replace(/\s+/g, ' ');
    expect(t).toContain('✓ Ann Approver');
    expect(t).toContain('Still needed: 1 more approver of fw-2026 (not the orderer, not Ann Approver)');
    const warning = (f.nativeElement as HTMLElement).querySelector('.warning');
    expect(warning?.textContent).toContain('Production key, no declared digests');
  });

  it('gives no digest warning for a development operation', async () => {
    const f = await render([operation({ digests: [], keys: [opKey({ environment: 'development', requiredApprovers: 0, approvals: 0, approvalsMissing: 0, approvedBy: [] })] })]);
    expect((f.nativeElement as HTMLElement).querySelector('.warning')).toBeNull();
    expect(text(f)).toContain('No declared digests: any input may be signed within the usages.');
  });

  it('shows what the CI run declared about itself, as declared', async () => {
    const f = await render([operation({ provenance: { project: 'demo/fw', pipeline: 'release', run: '42', commit: 'abcdef1234567', url: 'https://ci.example.test/run/42' } })]);
    const t = text(f).replace(/\s+/g, ' ');
    expect(t).toContain('project demo/fw');
    expect(t).toContain('commit abcdef1234567');
    expect(t).toContain('declared by the orderer, not verified');
    expect((f.nativeElement as HTMLElement).querySelector('.provenance a')?.getAttribute('href')).toBe('https://ci.example.test/run/42');
  });

  // The API takes only https provenance URLs (contract.ts); the console binds no other scheme as a link either
  // (a row written before that rule, or by another writer): Angular's sanitiser stops only javascript:, not data: or
  // vbscript:, and an http link would take an approver off TLS. Such a URL is shown as the orderer's text.
  it.each([
    ['fail javascript:', 'javascript:alert(document.domain)'],
    ['fail data:', 'data:text/html,<script>alert(1)</script>'],
    ['fail vbscript:', 'vbscript:msgbox(1)'],
    ['fail plain http', 'http://ci.example.test/run/42'],
    ['fail a relative URL', '/api/v1/keys'],
  ])('%s provenance URL: no link, the URL shown as text', async (_name, url) => {
    const f = await render([operation({ provenance: { project: 'demo/fw', url } })]);
    expect((f.nativeElement as HTMLElement).querySelector('.provenance a')).toBeNull();
    expect((f.nativeElement as HTMLElement).querySelector('.provenance .url')?.textContent).toBe(url);
  });

  it('shows the limits each key holds operations to, and whether administrators set them', async () => {
    const set = { maxWindowSeconds: 7_200, maxUsagesPerOperation: 3, maxBackdateSeconds: 90, maxStartAheadSeconds: 3_600, source: 'set', updatedAt: '2026-12-05T08:00:00.000Z' } as const;
    const f = await render([
      operation({
        keys: [
          opKey({ keyid: 'fw-prod', usagesAllowed: 3, usagesUsed: 0, requiredApprovers: 2, approvals: 0, limits: KEY_LIMITS }),
          opKey({ keyid: 'fw-tight', usagesAllowed: 1, usagesUsed: 0, requiredApprovers: 1, approvals: 0, limits: set }),
        ],
      }),
    ]);
    const cells = [...(f.nativeElement as HTMLElement).querySelectorAll('dd.limits')].map((c) => c.textContent?.replace(/\s+/g, ' ').trim());
    expect(cells).toEqual([
      'window ≤ 7 d, ≤ 1000 usages, start from −5 min to +7 d (defaults)',
      'window ≤ 2 h, ≤ 3 usages, start from −90 s to +1 h',
    ]);
  });

  it('shows the empty state when nothing waits for me', async () => {
    const f = await render([]);
    expect((f.nativeElement as HTMLElement).querySelector('.empty')?.textContent).toContain('No operation is waiting for your approval.');
  });

  it('loads the next page with the cursor on "Load more"', async () => {
    const f = await render([operation()], 'next-1');
    button(f, 'Load more')?.click();
    ctrl.expectOne((r) => r.url === '/api/v1/operations' && r.params.get('cursor') === 'next-1').flush({ items: [operation({ id: '88888888-8888-4888-8888-888888888888', description: 'Second page op' })], nextCursor: null });
    await f.whenStable();
    expect(text(f)).toContain('Second page op');
    expect(button(f, 'Load more')).toBeUndefined();
  });

  it('approves, after a confirmation that restates it, with a CSRF-protected POST and removes the operation from the list', async () => {
    dialogResult = true as unknown as string;
    const f = await render();
    button(f, 'Approve')?.click();
    await f.whenStable();
    expect(opened).toEqual([ApproveDialogComponent]);
    const req = ctrl.expectOne({ method: 'POST', url: `/api/v1/operations/${operation().id}/approvals` });
    expect(req.request.headers.get('X-Keyserver-CSRF')).toBe('1');
    req.flush(operation({ state: 'APPROVED' }));
    await f.whenStable();
    await new Promise((r) => setTimeout(r));
    await f.whenStable();
    expect(text(f)).not.toContain(operation().description);
  });

  it('rejects with the reason given in the dialog', async () => {
    dialogResult = 'The digest is not the release build';
    const f = await render();
    button(f, 'Reject')?.click();
    await f.whenStable();
    expect(opened).toEqual([RejectDialogComponent]);
    const req = ctrl.expectOne({ method: 'POST', url: `/api/v1/operations/${operation().id}/rejection` });
    expect(req.request.body).toEqual({ reason: 'The digest is not the release build' });
    req.flush(operation({ state: 'REJECTED' }));
  });

  it('sends nothing when the approval is not confirmed', async () => {
    const f = await render();
    button(f, 'Approve')?.click();
    await f.whenStable();
    expect(opened).toEqual([ApproveDialogComponent]);
    ctrl.expectNone((r) => r.method === 'POST');
  });

  it('sends nothing when the reject dialog is cancelled', async () => {
    const f = await render();
    button(f, 'Reject')?.click();
    await f.whenStable();
    ctrl.expectNone((r) => r.method === 'POST');
  });

  it('shows the refusal in plain words', async () => {
    dialogResult = true as unknown as string;
    const f = await render();
    button(f, 'Approve')?.click();
    await f.whenStable();
    ctrl
      .expectOne({ method: 'POST', url: `/api/v1/operations/${operation().id}/approvals` })
      .flush({ type: 'about:blank', title: 'Forbidden', status: 403, code: 'self_approval_forbidden' }, { status: 403, statusText: 'Forbidden' });
    await new Promise((r) => setTimeout(r));
    await f.whenStable();
    const alert = (f.nativeElement as HTMLElement).querySelector('[role="alert"]');
    expect(alert?.getAttribute('data-code')).toBe('self_approval_forbidden');
    expect(alert?.textContent).toContain(PROBLEM_MESSAGES['self_approval_forbidden']);
    expect(text(f)).toContain(operation().description);
  });

  it('shows a load failure with a retry', async () => {
    const fixture = TestBed.createComponent(ApprovalsComponent);
    ctrl.expectOne((r) => r.url === '/api/v1/operations').flush({ type: 'about:blank', title: 'Bad gateway', status: 502, code: 'upstream_unavailable' }, { status: 502, statusText: 'Bad Gateway' });
    await new Promise((r) => setTimeout(r));
    await fixture.whenStable();
    expect(text(fixture)).toContain(PROBLEM_MESSAGES['upstream_unavailable']);
    button(fixture, 'Try again')?.click();
    ctrl.expectOne((r) => r.url === '/api/v1/operations').flush({ items: [], nextCursor: null });
  });
});
