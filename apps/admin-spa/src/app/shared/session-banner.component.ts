import { DateTimeComponent } from './datetime.component';
import { ChangeDetectionStrategy, Component, inject } from '@angular/core';
import { RouterLink } from '@angular/router';
import { AdminSessionsService } from '../core/admin-sessions.service';

/** Always-visible notice while the user acts inside an active administrative session. */
@Component({
  selector: 'app-session-banner',
  imports: [DateTimeComponent, RouterLink],
  changeDetection: ChangeDetectionStrategy.OnPush,
  template: `
    @if (sessions.active(); as s) {
      <div class="session-banner" role="status" aria-live="polite">
        <strong>Administrative session active:</strong>
        <span class="session-desc">{{ s.description }}</span>
        <span>until <app-datetime [value]="s.expiresAt" /></span>
        <a routerLink="/admin-sessions">Manage</a>
      </div>
    }
  `,
})
export class SessionBannerComponent {
  protected readonly sessions = inject(AdminSessionsService);
}
