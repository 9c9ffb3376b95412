import { HttpClient, HttpInterceptorFn } from '@angular/common/http';
import { Injectable, computed, inject, signal } from '@angular/core';
import { firstValueFrom, map, type Observable } from 'rxjs';
import type { AdminSessionView } from './api-types';
import { AuthService } from './auth.service';
import { Perm } from './permissions';
import { toProblem, type Problem } from './problem';

/** The header that names the ACTIVE administrative session a change is made in (API AdminSessionGate). */
export const ADMIN_SESSION_HEADER = 'X-Admin-Session';

/** True when `s` is ACTIVE, unexpired and `subjectId` opened or authorized it (the API's participant rule). */
export function isUsableBy(s: AdminSessionView, subjectId: string | null, now = Date.now()): boolean {
  if (s.state !== 'ACTIVE' || Date.parse(s.expiresAt) <= now || !subjectId) return false;
  return s.creator.subjectId === subjectId || s.authorizedBy.some((a) => a.subjectId === subjectId);
}

/** `/api/v1/admin-sessions` and the session the user currently acts in (drives the banner and edit rights). */
@Injectable({ providedIn: 'root' })
export class AdminSessionsService {
  private readonly http = inject(HttpClient);
  private readonly auth = inject(AuthService);
  private readonly base = '/api/v1/admin-sessions';

  readonly sessions = signal<AdminSessionView[]>([]);
  readonly loading = signal(false);
  readonly problem = signal<Problem | null>(null);
  /** The newest session the user may act in, if any. */
  readonly active = computed(() => {
    const me = this.auth.me()?.subjectId ?? null;
    return this.sessions().find((s) => isUsableBy(s, me)) ?? null;
  });

  list(): Observable<AdminSessionView[]> {
    return this.http.get<{ items: AdminSessionView[] }>(this.base, { params: { ended: 'recent' } }).pipe(map((r) => r.items));
  }

  /** Reloads the list (only for users who may manage sessions). */
  async refresh(): Promise<void> {
    if (!this.auth.has(Perm.AdminSessionsManage)) {
      this.sessions.set([]);
      return;
    }
    this.loading.set(true);
    try {
      this.sessions.set(await firstValueFrom(this.list()));
      this.problem.set(null);
    } catch (err) {
      this.problem.set(toProblem(err));
    } finally {
      this.loading.set(false);
    }
  }

  /** `powers`: the session may make or unmake administrators and approvers (ADR 0044). */
  open(description: string, powers = false): Observable<AdminSessionView> {
    return this.http.post<AdminSessionView>(this.base, { description, powers });
  }

  authorize(id: string): Observable<AdminSessionView> {
    return this.http.post<AdminSessionView>(`${this.base}/${encodeURIComponent(id)}/authorizations`, {});
  }

  close(id: string): Observable<AdminSessionView> {
    return this.http.post<AdminSessionView>(`${this.base}/${encodeURIComponent(id)}/closure`, {});
  }
}

const ADMIN_PATHS = /^\/api\/v1\/(subjects|roles|keys)(\/|$|\?)/;
const UNSAFE = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

/** Names the active administrative session on administrative changes (subjects, roles, keys). */
export const adminSessionInterceptor: HttpInterceptorFn = (req, next) => {
  if (!UNSAFE.has(req.method) || !ADMIN_PATHS.test(req.url)) return next(req);
  const active = inject(AdminSessionsService).active();
  return next(active ? req.clone({ setHeaders: { [ADMIN_SESSION_HEADER]: active.id } }) : req);
};
