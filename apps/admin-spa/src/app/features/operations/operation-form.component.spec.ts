import { provideHttpClient } from '@angular/common/http';
import { HttpTestingController, provideHttpClientTesting } from '@angular/common/http/testing';
import { TestBed, type ComponentFixture } from '@angular/core/testing';
import { Router, provideRouter } from '@angular/router';
import { operation } from '../../../testing/fixtures';
import { OperationFormComponent } from './operation-form.component';
import { keyRow, operationForm, toRequest } from './operation-form';

describe(OperationFormComponent.name, () => {
  let ctrl: HttpTestingController;
  let f: ComponentFixture<OperationFormComponent>;
  let el: HTMLElement;

  beforeEach(async () => {
    TestBed.configureTestingModule({ providers: [provideHttpClient(), provideHttpClientTesting(), provideRouter([])] });
    ctrl = TestBed.inject(HttpTestingController);
    f = TestBed.createComponent(OperationFormComponent);
    ctrl.expectOne('/api/keys').flush([{ keyid: 'fw-2026', keyinfo: 'FW EC_P256', certificate: '' }]);
    await f.whenStable();
    el = f.nativeElement as HTMLElement;
  });

  afterEach(() => ctrl.verify());

  function set(selector: string, value: string, index = 0) {
    const input = el.querySelectorAll<HTMLInputElement | HTMLTextAreaElement>(selector)[index];
    input.value = value;
    input.dispatchEvent(new Event('input'));
    input.dispatchEvent(new Event('blur'));
  }
  async function submit() {
    (el.querySelector('button[type="submit"]') as HTMLButtonElement).click();
    await f.whenStable();
  }
  const errors = () => [...el.querySelectorAll('mat-error, .field-error')].map((e) => e.textContent?.trim());

  it('labels every control', () => {
    const labels = [...el.querySelectorAll('mat-label')].map((l) => l.textContent?.trim());
    expect(labels).toEqual(['Description', 'Valid from', 'Valid to', 'Key id 1', 'Usages for key 1', 'Declared digests (optional)']);
  });

  it('fail refuses a description shorter than 8 characters and sends nothing', async () => {
    set('textarea[formcontrolname="description"]', '  short  ');
    set('input[formcontrolname="keyid"]', 'fw-2026');
    await submit();
    expect(errors()).toContain('At least 8 characters.');
    ctrl.expectNone({ method: 'POST' });
  });

  it('fail requires a key id and whole usages from 1', async () => {
    set('textarea[formcontrolname="description"]', 'Sign the 1.2.3 release');
    set('input[formcontrolname="usages"]', '0');
    await submit();
    expect(errors()).toEqual(expect.arrayContaining(['A key id is required.', 'A whole number from 1 to 1,000,000.']));
    ctrl.expectNone({ method: 'POST' });
  });

  it('fail refuses a window that ends before it starts', async () => {
    set('textarea[formcontrolname="description"]', 'Sign the 1.2.3 release');
    set('input[formcontrolname="keyid"]', 'fw-2026');
    set('input[formcontrolname="validFrom"]', '2026-12-02T10:00');
    set('input[formcontrolname="validTo"]', '2026-12-01T10:00');
    await submit();
    expect(errors()).toContain('The end of the window must be after its start.');
    ctrl.expectNone({ method: 'POST' });
  });

  it('fail refuses a key listed twice', async () => {
    set('textarea[formcontrolname="description"]', 'Sign the 1.2.3 release');
    set('input[formcontrolname="keyid"]', 'fw-2026');
    ([...el.querySelectorAll('button')].find((b) => b.textContent?.trim() === 'Add a key') as HTMLButtonElement).click();
    await f.whenStable();
    set('input[formcontrolname="keyid"]', 'fw-2026', 1);
    await submit();
    expect(errors()).toContain('A key appears twice.');
    ctrl.expectNone({ method: 'POST' });
  });

  it('fail refuses a digest that is not hexadecimal', async () => {
    set('textarea[formcontrolname="description"]', 'Sign the 1.2.3 release');
    set('input[formcontrolname="keyid"]', 'fw-2026');
    set('textarea[formcontrolname="digests"]', 'abcd\nxyz1');
    await submit();
    expect(errors()).toContain('Not a hexadecimal digest: xyz1');
    ctrl.expectNone({ method: 'POST' });
  });

  it('ok creates the operation and opens it', async () => {
    const navigate = jest.spyOn(TestBed.inject(Router), 'navigate').mockResolvedValue(true);
    set('textarea[formcontrolname="description"]', '  Sign the 1.2.3 release  ');
    set('input[formcontrolname="keyid"]', 'fw-2026');
    set('input[formcontrolname="usages"]', '3');
    set('input[formcontrolname="validFrom"]', '2026-12-01T10:00');
    set('input[formcontrolname="validTo"]', '2026-12-02T10:00');
    set('textarea[formcontrolname="digests"]', 'ABCD\n\n0011');
    await submit();
    const req = ctrl.expectOne({ method: 'POST', url: '/api/v1/operations' });
    expect(req.request.body).toEqual({
      description: 'Sign the 1.2.3 release',
      validFrom: new Date('2026-12-01T10:00').toISOString(),
      validTo: new Date('2026-12-02T10:00').toISOString(),
      keys: [{ keyid: 'fw-2026', usages: 3 }],
      digests: ['abcd', '0011'],
    });
    req.flush(operation({ id: '99999999-9999-4999-8999-999999999999' }));
    await new Promise((r) => setTimeout(r));
    expect(navigate).toHaveBeenCalledWith(['/operations', '99999999-9999-4999-8999-999999999999']);
  });

  it('shows the API refusal in plain words', async () => {
    set('textarea[formcontrolname="description"]', 'Sign the 1.2.3 release');
    set('input[formcontrolname="keyid"]', 'fw-9');
    await submit();
    ctrl.expectOne({ method: 'POST', url: '/api/v1/operations' }).flush({ type: 'about:blank', title: 'Not permitted', status: 403, code: 'key_not_permitted' }, { status: 403, statusText: 'Forbidden' });
    await new Promise((r) => setTimeout(r));
    await f.whenStable();
    expect(el.querySelector('[role="alert"]')?.getAttribute('data-code')).toBe('key_not_permitted');
  });
});

describe('operationForm', () => {
  it('omits digests when none are given', () => {
    const form = operationForm(new Date('2026-12-01T10:00:00'));
    form.controls.description.setValue('Sign the release');
    form.controls.keys.setControl(0, keyRow('k1', 2));
    expect(form.valid).toBe(true);
    expect(toRequest(form)).not.toHaveProperty('digests');
  });

  it('defaults to a 24 hour window starting now', () => {
    const form = operationForm(new Date('2026-12-01T10:00:00'));
    expect(form.controls.validFrom.value).toBe('2026-12-01T10:00');
    expect(form.controls.validTo.value).toBe('2026-12-02T10:00');
  });
});
