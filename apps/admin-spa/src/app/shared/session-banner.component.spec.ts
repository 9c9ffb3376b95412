import { provideHttpClient } from '@angular/common/http';
import { HttpTestingController, provideHttpClientTesting } from '@angular/common/http/testing';
import { TestBed } from '@angular/core/testing';
import { provideRouter } from '@angular/router';
import { AdminSessionsService } from '../core/admin-sessions.service';
import { AuthService } from '../core/auth.service';
import { ME, adminSession, keyclientMe } from '../../testing/fixtures';
import { SessionBannerComponent } from './session-banner.component';

describe(SessionBannerComponent.name, () => {
  let ctrl: HttpTestingController;

  beforeEach(async () => {
    TestBed.configureTestingModule({ providers: [provideHttpClient(), provideHttpClientTesting(), provideRouter([])] });
    ctrl = TestBed.inject(HttpTestingController);
    const loaded = TestBed.inject(AuthService).ensureLoaded();
    ctrl.expectOne('/me').flush(keyclientMe({ ...ME, permissions: ['admin-sessions:manage'] }));
    await loaded;
  });

  afterEach(() => ctrl.verify());

  async function renderWith(items: unknown[]) {
    const done = TestBed.inject(AdminSessionsService).refresh();
    ctrl.expectOne('/api/v1/admin-sessions?ended=recent').flush({ items });
    await done;
    const fixture = TestBed.createComponent(SessionBannerComponent);
    await fixture.whenStable();
    return fixture;
  }

  it('shows the active session I take part in, with its description and a link to manage it', async () => {
    const fixture = await renderWith([adminSession({ description: 'Rotate the CA approvers' })]);
    const banner = (fixture.nativeElement as HTMLElement).querySelector('.session-banner');
    expect(banner).not.toBeNull();
    expect(banner?.getAttribute('role')).toBe('status');
    expect(banner?.textContent).toContain('Administrative session active');
    expect(banner?.textContent).toContain('Rotate the CA approvers');
    expect(banner?.querySelector('a')?.getAttribute('href')).toBe('/admin-sessions');
  });

  it.each([
    ['a pending session', adminSession({ state: 'PENDING' })],
    ['an expired session', adminSession({ expiresAt: new Date(Date.now() - 1).toISOString() })],
    ['a session of other administrators', adminSession({ creator: { subjectId: 'x', displayName: 'X' }, authorizedBy: [{ subjectId: 'x', displayName: 'X' }] })],
  ])('is hidden for %s', async (_name, s) => {
    const fixture = await renderWith([s]);
    expect((fixture.nativeElement as HTMLElement).querySelector('.session-banner')).toBeNull();
  });

  it('disappears when the session is closed', async () => {
    const fixture = await renderWith([adminSession()]);
    const done = TestBed.inject(AdminSessionsService).refresh();
    ctrl.expectOne('/api/v1/admin-sessions?ended=recent').flush({ items: [adminSession({ state: 'CLOSED' })] });
    await done;
    await fixture.whenStable();
    expect((fixture.nativeElement as HTMLElement).querySelector('.session-banner')).toBeNull();
  });
});
