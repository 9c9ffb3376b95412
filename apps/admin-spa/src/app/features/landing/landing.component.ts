import { ChangeDetectionStrategy, Component, computed, effect, inject } from '@angular/core';
import { ActivatedRoute, Router } from '@angular/router';
import { MatButtonModule } from '@angular/material/button';
import { MatCardModule } from '@angular/material/card';
import { MatProgressBarModule } from '@angular/material/progress-bar';
import { AuthService } from '../../core/auth.service';
import { NAV_ITEMS } from '../../core/permissions';
import { ProblemMessageComponent } from '../../shared/problem-message.component';
import { NoAccessComponent } from './no-access.component';

/** `/`: the sign-in page; a signed-in user is sent to the first screen their permissions allow. */
@Component({
  selector: 'app-landing',
  imports: [NoAccessComponent, MatButtonModule, MatCardModule, MatProgressBarModule, ProblemMessageComponent],
  changeDetection: ChangeDetectionStrategy.OnPush,
  template: `
    <mat-card class="landing" appearance="outlined">
      <mat-card-header>
        <mat-card-title><h1>Keyserver administration</h1></mat-card-title>
      </mat-card-header>
      <mat-card-content>
        @switch (auth.status()) {
          @case ('unknown') {
            <mat-progress-bar mode="indeterminate" aria-label="Checking your session" />
          }
          @case ('signedIn') {
            @if (!firstPath()) {
              <app-no-access />
            }
          }
          @case ('error') {
            <app-problem-message [problem]="auth.problem()" />
          }
          @default {
            <p>Approve operations, manage keys, certificates, subjects and roles, and read the audit log.</p>
            <p>Sign in with your organization account.</p>
          }
        }
      </mat-card-content>
      @if (auth.status() === 'anonymous' || auth.status() === 'error') {
        <mat-card-actions>
          <button mat-flat-button type="button" (click)="signIn()">Sign in with Microsoft Entra ID</button>
        </mat-card-actions>
      }
    </mat-card>
  `,
})
export class LandingComponent {
  protected readonly auth = inject(AuthService);
  private readonly router = inject(Router);
  private readonly route = inject(ActivatedRoute);
  protected readonly firstPath = computed(() => {
    const perms = this.auth.me()?.permissions ?? [];
    return NAV_ITEMS.find((i) => i.anyOf.some((p) => perms.includes(p)))?.path ?? null;
  });

  constructor() {
    void this.auth.ensureLoaded();
    effect(() => {
      const me = this.auth.me();
      if (!me) return;
      const returnTo = this.returnTo();
      const target = returnTo !== '/' ? returnTo : this.firstPath();
      if (target) void this.router.navigateByUrl(target);
    });
  }

  protected signIn(): void {
    this.auth.login(this.returnTo());
  }

  private returnTo(): string {
    const r = this.route.snapshot.queryParamMap.get('returnTo');
    return r && r.startsWith('/') && !r.startsWith('//') ? r : '/';
  }
}
