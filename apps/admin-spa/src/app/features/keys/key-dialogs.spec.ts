import type { Type } from '@angular/core';
import { TestBed, type ComponentFixture } from '@angular/core/testing';
import { MAT_DIALOG_DATA, MatDialogRef } from '@angular/material/dialog';
import { ApproversDialogComponent } from './approvers-dialog.component';
import { KeyDialogComponent } from './key-dialog.component';
import { RevokeDialogComponent } from '../../shared/revoke-dialog.component';

// The three key dialogs rendered alone: labels, errors shown in the DOM, what they close with.
describe('key dialogs', () => {
  let closed: unknown[];

  async function render<T>(component: Type<T>, data: unknown = null): Promise<{ f: ComponentFixture<T>; el: HTMLElement }> {
    closed = [];
    TestBed.configureTestingModule({
      providers: [
        { provide: MAT_DIALOG_DATA, useValue: data },
        { provide: MatDialogRef, useValue: { close: (v: unknown) => closed.push(v) } },
      ],
    });
    const f = TestBed.createComponent(component);
    await f.whenStable();
    return { f, el: f.nativeElement as HTMLElement };
  }

  function set(el: HTMLElement, name: string, value: string) {
    const input = el.querySelector(`input[formcontrolname="${name}"]`) as HTMLInputElement;
    input.value = value;
    input.dispatchEvent(new Event('input'));
    input.dispatchEvent(new Event('blur'));
  }
  async function submit(f: ComponentFixture<unknown>, el: HTMLElement) {
    (el.querySelector('button[type="submit"]') as HTMLButtonElement).click();
    await f.whenStable();
  }
  const labels = (el: HTMLElement) => [...el.querySelectorAll('mat-label')].map((l) => l.textContent?.trim());
  const errors = (el: HTMLElement) => [...el.querySelectorAll('mat-error')].map((e) => e.textContent?.trim());

  describe(KeyDialogComponent.name, () => {
    it('labels every control and offers a product only for FW keys', async () => {
      const { f, el } = await render(KeyDialogComponent);
      expect(labels(el)).toEqual([
        'Key id',
        'Type',
        'Algorithm',
        'Hash (optional)',
        'Approvers required',
        'Validity (days)',
        'Product (optional)',
        'Common name',
        'Organization (optional)',
        'Country (optional)',
      ]);
      for (const input of el.querySelectorAll('input')) expect(el.querySelector(`label[for="${input.id}"]`)).not.toBeNull();
      (f.componentInstance as unknown as { form: { controls: { type: { setValue(v: string): void } } } }).form.controls.type.setValue('CA');
      await f.whenStable();
      expect(labels(el)).not.toContain('Product (optional)');
    });

    it('fail shows the errors of an empty form and does not close', async () => {
      const { f, el } = await render(KeyDialogComponent);
      set(el, 'requiredApprovers', '11');
      set(el, 'validityDays', '0');
      set(el, 'country', 'D1');
      await submit(f, el);
      expect(closed).toEqual([]);
      expect(errors(el)).toEqual([
        'A key id is required.',
        'A whole number from 0 to 10.',
        'A whole number from 1 to 36500.',
        'A common name is required.',
        'Two letters (ISO 3166), e.g. DK.',
      ]);
    });

    it('fail explains a keyid and a common name the contract refuses', async () => {
      const { f, el } = await render(KeyDialogComponent);
      set(el, 'keyid', 'FW 2026');
      set(el, 'commonName', 'Bad\u0007name');
      await submit(f, el);
      expect(closed).toEqual([]);
      expect(errors(el)).toEqual(['3 to 64 lower-case letters, digits, . _ -, starting with a letter or digit.', 'At most 64 characters, one script, no hidden, full-width or styled letters.']);
    });

    it('ok closes with the request body', async () => {
      const { f, el } = await render(KeyDialogComponent);
      set(el, 'keyid', 'fw-gadget-2026');
      set(el, 'requiredApprovers', '1');
      set(el, 'validityDays', '730');
      set(el, 'product', ' gadget ');
      set(el, 'commonName', 'Gadget Firmware 2026');
      set(el, 'organization', 'Demo Devices Ltd');
      set(el, 'country', 'dk');
      await submit(f, el);
      expect(closed).toEqual([
        {
          keyid: 'fw-gadget-2026',
          type: 'FW',
          algorithm: 'EC_P256',
          requiredApprovers: 1,
          validityDays: 730,
          product: 'gadget',
          commonName: 'Gadget Firmware 2026',
          organization: 'Demo Devices Ltd',
          country: 'DK',
        },
      ]);
    });
  });

  describe(`${KeyDialogComponent.name} approvers`, () => {
    it('ok says what 0 approvers means before the key is created', async () => {
      const { f, el } = await render(KeyDialogComponent);
      expect(el.querySelector('#zero-approvers-note')).toBeNull();
      set(el, 'requiredApprovers', '0');
      await f.whenStable();
      expect(el.querySelector('#zero-approvers-note')?.textContent).toContain('a development key');
      set(el, 'requiredApprovers', '2');
      await f.whenStable();
      expect(el.querySelector('#zero-approvers-note')).toBeNull();
    });
  });

  describe(ApproversDialogComponent.name, () => {
    it.each([
      ['fail negative', '-1'],
      ['fail above ten', '11'],
      ['fail fraction', '2.5'],
      ['fail empty', ''],
    ])('%s: does not close and shows an error', async (_n, value) => {
      const { f, el } = await render(ApproversDialogComponent, { keyid: 'fw-1', requiredApprovers: 2 });
      set(el, 'requiredApprovers', value);
      await submit(f, el);
      expect(closed).toEqual([]);
      expect(errors(el)).toEqual(['A whole number from 0 to 10.']);
    });

    it('ok starts from the current number and closes with the new one, warning before a production key loses its approvers', async () => {
      const { f, el } = await render(ApproversDialogComponent, { keyid: 'fw-1', requiredApprovers: 2 });
      expect((el.querySelector('input') as HTMLInputElement).value).toBe('2');
      expect(el.querySelector('h2')?.textContent).toContain('fw-1');
      expect(el.querySelector('.warning')).toBeNull();
      set(el, 'requiredApprovers', '0');
      await f.whenStable();
      expect(el.querySelector('.warning[role="note"]')?.textContent).toContain('0 approvers turns fw-1 into a development key');
      await submit(f, el);
      expect(closed).toEqual([0]);
    });

    it('ok gives no warning when a development key stays without approvers', async () => {
      const { f, el } = await render(ApproversDialogComponent, { keyid: 'fw-dev', requiredApprovers: 0 });
      set(el, 'requiredApprovers', '0');
      await f.whenStable();
      expect(el.querySelector('.warning')).toBeNull();
    });
  });

  describe(RevokeDialogComponent.name, () => {
    it('fail needs a reason chosen', async () => {
      const { f, el } = await render(RevokeDialogComponent, { title: 'Revoke key fw-1', detail: 'The key will no longer sign or issue.' });
      expect(el.querySelector('h2')?.textContent).toContain('Revoke key fw-1');
      expect(labels(el)).toEqual(['Reason']);
      await submit(f, el);
      expect(closed).toEqual([]);
      expect(errors(el)).toEqual(['A reason is required.']);
    });

    it('ok closes with the chosen reason', async () => {
      const { f, el } = await render(RevokeDialogComponent, { title: 'Revoke key fw-1', detail: 'The key will no longer sign or issue.' });
      (f.componentInstance as unknown as { reason: { setValue(v: string): void } }).reason.setValue('superseded');
      await submit(f, el);
      expect(closed).toEqual(['superseded']);
    });
  });
});
