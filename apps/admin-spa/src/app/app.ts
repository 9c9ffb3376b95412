import { ChangeDetectionStrategy, Component, computed, effect, inject, signal } from '@angular/core';
import { NavigationEnd, Router, RouterLink, RouterLinkActive, RouterOutlet } from '@angular/router';
import { filter } from 'rxjs';
import { takeUntilDestroyed } from '@angular/core/rxjs-interop';
import { ApprovalCountService } from './core/approval-count.service';
import { MatButtonModule } from '@angular/material/button';
import { MatToolbarModule } from '@angular/material/toolbar';
import { AdminSessionsService } from './core/admin-sessions.service';
import { AuthService } from './core/auth.service';
import { NAV_ITEMS } from './core/permissions';
import { SessionBannerComponent } from './shared/session-banner.component';

/** The shell: skip link, toolbar (user, sign out), permission-filtered navigation, session banner. */
@Component({
  selector: 'app-root',
  imports: [RouterOutlet, RouterLink, RouterLinkActive, MatToolbarModule, MatButtonModule, SessionBannerComponent],
  changeDetection: ChangeDetectionStrategy.OnPush,
  template: `
    <button type="button" class="skip-link" (click)="skipToMain()">Skip to content</button>
    <mat-toolbar class="app-toolbar" role="banner">
      @if (auth.me() && nav().length) {
        <button type="button" class="menu-toggle" [attr.aria-expanded]="menuOpen()" aria-controls="main-nav" (click)="menuOpen.set(!menuOpen())">
          <span aria-hidden="true">☰</span> Menu
          @if (waitingLabel()) {
            <span class="count-badge" aria-hidden="true">{{ waitingLabel() }}</span>
            <span class="visually-hidden">, {{ waitingLabel() }} waiting for your approval</span>
          }
        </button>
      }
      <a class="brand" routerLink="/"><span class="brand-long">Keyserver administration</span><span class="brand-short">Keyserver</span></a>
      <span class="spacer"></span>
      @if (auth.me(); as me) {
        <span class="user"><span class="visually-hidden">Signed in as </span>{{ me.displayName }}</span>
        <button mat-stroked-button type="button" class="on-dark" (click)="signOut()">Sign out</button>
      }
    </mat-toolbar>
    <app-session-banner />
    @if (auth.me()) {
      <div class="layout" [class.menu-open]="menuOpen()">
        <nav class="nav" id="main-nav" aria-label="Main">
          @if (nav().length) {
            <ul>
              @for (item of nav(); track item.path) {
                <li>
                  <a [routerLink]="item.path" (click)="menuOpen.set(false)" routerLinkActive="active-link" [routerLinkActiveOptions]="{ exact: true }" ariaCurrentWhenActive="page">{{ item.label }}@if (item.path === '/approvals' && waitingLabel()) {
                      <span class="count-badge" [attr.data-count]="waiting.count()" aria-hidden="true">{{ waitingLabel() }}</span><span class="visually-hidden"> ({{ waitingLabel() }} waiting)</span>
                    }</a>
                </li>
              }
            </ul>
          } @else {
            <p class="nav-empty">No screens for your account yet.</p>
          }
        </nav>
        <p class="visually-hidden" role="status" aria-live="polite">{{ waitingAnnouncement() }}</p>
        <main id="main" class="content" tabindex="-1"><router-outlet /></main>
      </div>
    } @else {
      <main id="main" class="content" tabindex="-1"><router-outlet /></main>
    }
  `,
})
export class App {
  protected readonly auth = inject(AuthService);
  private readonly adminSessions = inject(AdminSessionsService);
  private readonly router = inject(Router);
  protected readonly waiting = inject(ApprovalCountService);
  /** The navigation on narrow screens: closed until the Menu button opens it; closed again after navigating. */
  protected readonly menuOpen = signal(false);
  protected readonly waitingLabel = computed(() => (this.waiting.count() ? this.waiting.label() : ''));
  protected readonly waitingAnnouncement = computed(() => {
    const n = this.waiting.count();
    return n ? `${this.waiting.label()} operation${n === 1 ? '' : 's'} waiting for your approval` : '';
  });
  protected readonly nav = computed(() => {
    const perms = this.auth.me()?.permissions ?? [];
    return NAV_ITEMS.filter((i) => i.anyOf.some((p) => perms.includes(p)));
  });

  constructor() {
    void this.auth.ensureLoaded();
    this.router.events.pipe(filter((e) => e instanceof NavigationEnd), takeUntilDestroyed()).subscribe(() => this.menuOpen.set(false));
    // The banner needs the sessions as soon as the user is known.
    effect(() => {
      if (this.auth.me()) void this.adminSessions.refresh();
    });
    // The session ended (401 from the keyclient): back to the sign-in page, remembering where we were.
    effect(() => {
      if (this.auth.status() !== 'anonymous') return;
      const url = this.router.url;
      if (url !== '/' && !url.startsWith('/?')) void this.router.navigate(['/'], { queryParams: { returnTo: url } });
    });
  }

  /** A button, not `href="#main"`: with `<base href="/">` a fragment link would leave the page. */
  protected skipToMain(): void {
    document.getElementById('main')?.focus();
  }

  protected signOut(): void {
    void this.auth.logout();
  }
}
