import { HttpClient } from '@angular/common/http';
import { DestroyRef, Injectable, computed, effect, inject, signal } from '@angular/core';
import { firstValueFrom } from 'rxjs';
import type { OperationPage } from './api-types';
import { AuthService } from './auth.service';
import { Perm } from './permissions';

/** How often the count of operations waiting for me is re-read while the page is visible. */
export const APPROVAL_POLL_MS = 15_000;
/** One page is counted; beyond it the badge says "100+". */
export const APPROVAL_COUNT_PAGE = 100;

/**
 * The number of operations waiting for the signed-in user's approval, for the navigation badge. It polls
 * `GET /api/v1/operations?awaiting=me` through the keyclient (already on its proxy allow-list: no new route,
 * no long-lived connection per user) every {@link APPROVAL_POLL_MS} while the tab is visible, at once when it
 * becomes visible again, and after each of the user's own decisions.
 */
@Injectable({ providedIn: 'root' })
export class ApprovalCountService {
  private readonly http = inject(HttpClient);
  private readonly auth = inject(AuthService);
  private readonly state = signal<{ count: number; more: boolean } | null>(null);
  /** null until first read (or when the user cannot approve). */
  readonly count = computed(() => this.state()?.count ?? null);
  readonly label = computed(() => {
    const s = this.state();
    if (!s) return '';
    return s.more ? `${s.count}+` : String(s.count);
  });
  private timer: ReturnType<typeof setTimeout> | null = null;
  private inFlight = false;
  /** A refresh asked for while one was in flight: its answer may predate what the caller just changed. */
  private again = false;

  constructor() {
    effect(() => {
      const enabled = this.auth.has(Perm.OperationsApprove);
      this.stop();
      if (enabled) void this.refresh();
      else this.state.set(null);
    });
    const onVisible = () => {
      if (document.visibilityState === 'visible' && this.auth.has(Perm.OperationsApprove)) void this.refresh();
    };
    document.addEventListener('visibilitychange', onVisible);
    inject(DestroyRef).onDestroy(() => {
      document.removeEventListener('visibilitychange', onVisible);
      this.stop();
    });
  }

  /** Reads the count now and schedules the next read. */
  async refresh(): Promise<void> {
    if (!this.auth.has(Perm.OperationsApprove)) return;
    if (this.inFlight) {
      this.again = true;
      return;
    }
    this.inFlight = true;
    this.again = false;
    this.stop();
    try {
      const page = await firstValueFrom(this.http.get<OperationPage>('/api/v1/operations', { params: { awaiting: 'me', limit: APPROVAL_COUNT_PAGE } }));
      this.state.set({ count: page.items.length, more: page.nextCursor !== null });
    } catch {
      // Keep the last count; the next tick tries again (a 401 signs the user out through the interceptor).
    } finally {
      this.inFlight = false;
      if (this.again) void this.refresh();
      else this.schedule();
    }
  }

  private schedule(): void {
    this.stop();
    if (document.visibilityState === 'hidden') return;
    this.timer = setTimeout(() => void this.refresh(), APPROVAL_POLL_MS);
  }

  private stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }
}
