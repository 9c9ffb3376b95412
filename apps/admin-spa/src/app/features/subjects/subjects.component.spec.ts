import { provideHttpClient } from '@angular/common/http';
import { HttpTestingController, provideHttpClientTesting } from '@angular/common/http/testing';
import { type ComponentFixture, TestBed } from '@angular/core/testing';
import { MatDialog } from '@angular/material/dialog';
import { provideRouter } from '@angular/router';
import { of } from 'rxjs';
import { AdminSessionsService } from '../../core/admin-sessions.service';
import type { SubjectView } from '../../core/api-types';
import { AuthService } from '../../core/auth.service';
import { PROBLEM_MESSAGES } from '../../core/problem-messages';
import { ME, adminSession, keyclientMe } from '../../../testing/fixtures';
import { SubjectsComponent } from './subjects.component';

const SUBJECT: SubjectView = {
  id: 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa',
  kind: 'USER',
  tid: ME.tid,
  oid: 'bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb',
  displayName: 'Sam Signer',
  username: 'sam@contoso.example',
  enabled: true,
  roles: ['signers'],
  natures: ['SIGNER'],
  keyPermissions: {},
  account: 'guest',
  accountProvenAt: '2026-11-01T00:00:00Z',
  createdAt: '2026-11-01T00:00:00Z',
  updatedAt: '2026-11-01T00:00:00Z',
};

describe(SubjectsComponent.name, () => {
  let ctrl: HttpTestingController;
  // What the subject dialog gives back when a test opens it.
  let dialogResult: unknown;
  let fixture: ComponentFixture<SubjectsComponent>;

  beforeEach(async () => {
    dialogResult = undefined;
    const dialog = { open: () => ({ afterClosed: () => of(dialogResult) }) };
    TestBed.configureTestingModule({ providers: [provideHttpClient(), provideHttpClientTesting(), provideRouter([]), { provide: MatDialog, useValue: dialog }] });
    ctrl = TestBed.inject(HttpTestingController);
    const loaded = TestBed.inject(AuthService).ensureLoaded();
    ctrl.expectOne('/me').flush(keyclientMe({ ...ME, permissions: ['subjects:read', 'subjects:admin', 'roles:read', 'roles:admin', 'admin-sessions:manage'] }));
    await loaded;
  });

  afterEach(() => ctrl.verify());

  async function render(sessions: unknown[]) {
    const refreshed = TestBed.inject(AdminSessionsService).refresh();
    ctrl.expectOne('/api/v1/admin-sessions?ended=recent').flush({ items: sessions });
    await refreshed;
    const f = TestBed.createComponent(SubjectsComponent);
    fixture = f;
    ctrl.expectOne('/api/v1/subjects').flush({ items: [SUBJECT] });
    ctrl.expectOne('/api/v1/roles').flush({ items: [{ name: 'signers', description: '', natures: ['SIGNER'], keys: [] }] });
    ctrl.expectOne('/api/v1/unknown-principals').flush({ items: [] });
    await new Promise((r) => setTimeout(r));
    await f.whenStable();
    return f.nativeElement as HTMLElement;
  }
  const editButton = (el: HTMLElement) => el.querySelector('button[aria-label="Edit Sam Signer"]') as HTMLButtonElement;

  it('disables changes with a hint when no administrative session is active', async () => {
    const el = await render([adminSession({ state: 'PENDING' })]);
    expect(el.textContent).toContain('Sam Signer');
    expect(el.querySelector('td[data-label="Kind"]')?.textContent).toContain('guest account');
    expect(editButton(el).disabled).toBe(true);
    expect(editButton(el).getAttribute('aria-describedby')).toBe('edit-hint');
    expect(el.querySelector('#edit-hint')?.textContent).toContain('open an administrative session');
  });

  it('fail giving a guest the approver role: the 409 subject_is_guest in plain words, with its code', async () => {
    const el = await render([adminSession()]);
    dialogResult = { ...SUBJECT, roles: ['signers', 'approvers'] };
    editButton(el).click();
    await new Promise((r) => setTimeout(r));
    const put = ctrl.expectOne((r) => r.url === `/api/v1/subjects/${SUBJECT.id}`);
    put.flush(
      { type: 'about:blank', title: 'Conflict', status: 409, code: 'subject_is_guest', detail: 'this change would give APPROVER to a guest account' },
      { status: 409, statusText: 'Conflict', headers: { 'content-type': 'application/problem+json' } },
    );
    await new Promise((r) => setTimeout(r));
    await fixture.whenStable();
    const shown = el.querySelector('.problem[data-code="subject_is_guest"]');
    expect(shown?.querySelector('.problem-text')?.textContent).toBe(PROBLEM_MESSAGES['subject_is_guest']);
    expect(shown?.querySelector('.problem-text')?.textContent).not.toBe('Conflict');
  });

  it('enables changes inside an active session I take part in', async () => {
    const el = await render([adminSession()]);
    expect(editButton(el).disabled).toBe(false);
    expect(el.querySelector('#edit-hint')).toBeNull();
  });
});
