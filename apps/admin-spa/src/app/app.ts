import { ChangeDetectionStrategy, Component, computed, effect, inject } from '@angular/core';
import { Router, RouterLink, RouterLinkActive, RouterOutlet } from '@angular/router';
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
      <a class="brand" routerLink="/">Keyserver administration</a>
      <span class="spacer"></span>
      @if (auth.me(); as me) {
        <span class="user" aria-label="Signed in as">{{ me.displayName }}</span>
        <button mat-stroked-button type="button" class="on-dark" (click)="signOut()">Sign out</button>
      }
    </mat-toolbar>
    <app-session-banner />
    @if (auth.me()) {
      <div class="layout">
        <nav class="nav" aria-label="Main">
          <ul>
            @for (item of nav(); track item.path) {
              <li>
                <a [routerLink]="item.path" routerLinkActive="active-link" [routerLinkActiveOptions]="{ exact: true }" ariaCurrentWhenActive="page">{{ item.label }}</a>
              </li>
            }
          </ul>
        </nav>
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
  protected readonly nav = computed(() => {
    const perms = this.auth.me()?.permissions ?? [];
    return NAV_ITEMS.filter((i) => i.anyOf.some((p) => perms.includes(p)));
  });

  constructor() {
    void this.auth.ensureLoaded();
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
