import { provideHttpClient } from '@angular/common/http';
import { HttpTestingController, provideHttpClientTesting } from '@angular/common/http/testing';
import { TestBed } from '@angular/core/testing';
import { AuditComponent } from './audit.component';

describe(AuditComponent.name, () => {
  let ctrl: HttpTestingController;

  beforeEach(() => {
    TestBed.configureTestingModule({ providers: [provideHttpClient(), provideHttpClientTesting()] });
    ctrl = TestBed.inject(HttpTestingController);
  });

  afterEach(() => ctrl.verify());

  async function render(verification: object) {
    const f = TestBed.createComponent(AuditComponent);
    ctrl.expectOne((r) => r.url === '/api/v1/audit').flush({ items: [], nextCursor: null });
    ctrl.expectOne('/api/v1/audit/verify').flush(verification);
    await new Promise((r) => setTimeout(r));
    await f.whenStable();
    return f;
  }

  it('reports an intact hash chain', async () => {
    const f = await render({ ok: true, checked: 1200 });
    expect((f.nativeElement as HTMLElement).querySelector('.ok')?.textContent).toContain('Intact: 1200 entries checked');
  });

  it.each([
    ['ok a sealed chain: up to which entry, and how many are not sealed yet', { sealed: true, anchored: true, checkpoints: 3, lastSealedSeq: '1190', lastSealedAt: '2026-12-07T09:00:00.000Z', unsealedEntries: 10 }, 'up to entry 1190'],
    ['fail an unsealed chain: says so', { sealed: false, anchored: true, checkpoints: 0, lastSealedSeq: null, lastSealedAt: null, unsealedEntries: 1200 }, 'Not sealed'],
  ])('%s (signed checkpoints)', async (_n, seal, text) => {
    const f = await render({ ok: true, checked: 1200, seal });
    expect((f.nativeElement as HTMLElement).querySelector('.seal')?.textContent).toContain(text);
  });

  it('reports where the hash chain breaks', async () => {
    const f = await render({ ok: false, checked: 41, firstBadSeq: '42' });
    expect((f.nativeElement as HTMLElement).querySelector('.bad')?.textContent).toContain('at entry 42');
  });

  it('sends the filters and refuses a malformed actor id without a request', async () => {
    const f = await render({ ok: true, checked: 0 });
    const el = f.nativeElement as HTMLElement;
    const set = (name: string, v: string) => {
      const i = el.querySelector(`input[formcontrolname="${name}"]`) as HTMLInputElement;
      i.value = v;
      i.dispatchEvent(new Event('input'));
    };
    const submit = () => (el.querySelector('form button[type="submit"]') as HTMLButtonElement).click();
    set('actor', 'not-a-guid');
    submit();
    ctrl.expectNone((r) => r.url === '/api/v1/audit');
    set('actor', '22222222-2222-2222-2222-222222222222');
    set('action', 'operation.approve');
    submit();
    const req = ctrl.expectOne((r) => r.url === '/api/v1/audit');
    expect(req.request.params.get('actor')).toBe('22222222-2222-2222-2222-222222222222');
    expect(req.request.params.get('action')).toBe('operation.approve');
    expect(req.request.params.has('cursor')).toBe(false);
    req.flush({ items: [], nextCursor: null });
  });
});
