import { HttpClient, HttpErrorResponse } from '@angular/common/http';
import { Injectable, computed, inject, signal } from '@angular/core';
import { firstValueFrom } from 'rxjs';
import { BrowserNavigation } from './browser-navigation';
import type { PermName } from './permissions';
import { toProblem, type Problem } from './problem';
import { navigableUrl } from './safe-url';

/** The signed-in user as the SPA needs it (never a token). */
export interface Me {
  displayName: string;
  username: string | null;
  tid: string;
  oid: string;
  subjectId: string | null;
  natures: string[];
  permissions: string[];
}

function strings(v: unknown): string[] {
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [];
}
function str(v: unknown): string | null {
  return typeof v === 'string' ? v : null;
}

/**
 * The keyclient's `GET /me` answer, flat or with the API's facts under `api` (subjectId, natures,
 * permissions); both shapes are accepted so the keyclient can settle on either.
 */
export function normalizeMe(body: unknown): Me {
  const b = (typeof body === 'object' && body !== null ? body : {}) as Record<string, unknown>;
  const api = (typeof b['api'] === 'object' && b['api'] !== null ? b['api'] : {}) as Record<string, unknown>;
  return {
    displayName: str(b['displayName']) ?? str(api['displayName']) ?? 'Unknown user',
    username: str(b['username']),
    tid: str(b['tid']) ?? str(api['tid']) ?? '',
    oid: str(b['oid']) ?? str(api['oid']) ?? '',
    subjectId: str(b['subjectId']) ?? str(api['subjectId']),
    natures: strings(b['natures']).length ? strings(b['natures']) : strings(api['natures']),
    permissions: strings(b['permissions']).length ? strings(b['permissions']) : strings(api['permissions']),
  };
}

type AuthState = { status: 'unknown' } | { status: 'anonymous' } | { status: 'signedIn'; me: Me } | { status: 'error'; problem: Problem };

/** Who is signed in, from the keyclient's session (HttpOnly cookie); nothing is stored in the browser. */
@Injectable({ providedIn: 'root' })
export class AuthService {
  private readonly http = inject(HttpClient);
  private readonly nav = inject(BrowserNavigation);
  private readonly state = signal<AuthState>({ status: 'unknown' });
  private loading: Promise<void> | null = null;

  readonly status = computed(() => this.state().status);
  readonly me = computed(() => {
    const s = this.state();
    return s.status === 'signedIn' ? s.me : null;
  });
  readonly problem = computed(() => {
    const s = this.state();
    return s.status === 'error' ? s.problem : null;
  });

  /** Loads /me once (again after `reload`); resolves when the state is known. */
  ensureLoaded(): Promise<void> {
    if (this.state().status !== 'unknown') return Promise.resolve();
    this.loading ??= this.reload();
    return this.loading;
  }

  async reload(): Promise<void> {
    try {
      const body = await firstValueFrom(this.http.get<unknown>('/me'));
      this.state.set({ status: 'signedIn', me: normalizeMe(body) });
    } catch (err) {
      if (err instanceof HttpErrorResponse && err.status === 401) this.state.set({ status: 'anonymous' });
      else this.state.set({ status: 'error', problem: toProblem(err) });
    } finally {
      this.loading = null;
    }
  }

  has(perm: PermName): boolean {
    return this.me()?.permissions.includes(perm) ?? false;
  }

  hasAny(perms: readonly PermName[]): boolean {
    return perms.some((p) => this.has(p));
  }

  /** Called when the keyclient answers 401 to an API call: the session is gone. */
  sessionEnded(): void {
    this.state.set({ status: 'anonymous' });
  }

  /** Full-page navigation to the keyclient, which starts the Entra ID code flow. */
  login(returnTo = '/approvals'): void {
    const safe = returnTo.startsWith('/') && !returnTo.startsWith('//') ? returnTo : '/';
    this.nav.assign(`/login?returnTo=${encodeURIComponent(safe)}`);
  }

  /** Ends the keyclient session, then follows the provider's end-session URL it returns. */
  async logout(): Promise<void> {
    let redirectTo = '/';
    try {
      const res = await firstValueFrom(this.http.post<{ redirectTo?: unknown }>('/logout', null, { headers: { Accept: 'application/json' } }));
      // Only an http(s) end-session URL is followed (core/safe-url.ts): a javascript: or data: one lands on the start page.
      if (typeof res?.redirectTo === 'string') redirectTo = navigableUrl(res.redirectTo, document.baseURI) ?? '/';
    } finally {
      this.state.set({ status: 'anonymous' });
      this.nav.assign(redirectTo);
    }
  }
}
