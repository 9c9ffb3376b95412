import { DateTimeComponent } from '../../shared/datetime.component';
import { ChangeDetectionStrategy, Component, computed, inject, signal } from '@angular/core';
import { FormControl, FormGroup, ReactiveFormsModule, Validators } from '@angular/forms';
import { firstValueFrom, type Observable } from 'rxjs';
import { MatButtonModule } from '@angular/material/button';
import { MatCheckboxModule } from '@angular/material/checkbox';
import { MatFormFieldModule } from '@angular/material/form-field';
import { MatInputModule } from '@angular/material/input';
import { MatSnackBar } from '@angular/material/snack-bar';
import { AdminSessionsService, isUsableBy } from '../../core/admin-sessions.service';
import type { AdminSessionView } from '../../core/api-types';
import { AuthService } from '../../core/auth.service';
import { toProblem, type Problem } from '../../core/problem';
import { ListStateComponent } from '../../shared/list-state.component';
import { ProblemMessageComponent } from '../../shared/problem-message.component';

/** `/admin-sessions`: open a session (four eyes), authorize others' sessions, close. */
@Component({
  selector: 'app-admin-sessions',
  imports: [DateTimeComponent, ReactiveFormsModule, MatButtonModule, MatCheckboxModule, MatFormFieldModule, MatInputModule, ListStateComponent, ProblemMessageComponent],
  changeDetection: ChangeDetectionStrategy.OnPush,
  template: `
    <div class="page-header">
      <h1>Administrative sessions</h1>
      <button mat-stroked-button type="button" (click)="sessions.refresh()">Refresh</button>
    </div>
    <p class="muted">Changes to subjects, roles and keys are only accepted inside an ACTIVE session that another administrator authorized.</p>
    <form class="filters" [formGroup]="openForm" (ngSubmit)="open()" aria-label="Open an administrative session">
      <mat-form-field appearance="outline" class="grow">
        <mat-label>What is the session for?</mat-label>
        <input matInput formControlName="description" required />
        <mat-hint>Shown to the administrator who authorizes it (8 to 500 characters).</mat-hint>
        @if (description.hasError('required')) {
          <mat-error>A description is required.</mat-error>
        } @else if (description.hasError('minlength')) {
          <mat-error>At least 8 characters.</mat-error>
        } @else if (description.hasError('maxlength')) {
          <mat-error>At most 500 characters.</mat-error>
        }
      </mat-form-field>
      <mat-checkbox formControlName="powers">May make or unmake administrators and approvers, and lower a key's required approvers</mat-checkbox>
      <button mat-flat-button type="submit" [disabled]="busy()">Open session</button>
    </form>
    <app-problem-message [problem]="problem()" />
    @if (sessions.sessions().length) {
      <table class="simple-table responsive">
        <caption class="visually-hidden">Administrative sessions</caption>
        <thead>
          <tr>
            <th scope="col">Description</th><th scope="col">State</th><th scope="col">Opened by</th><th scope="col">Second administrator</th><th scope="col">Expires / ended</th>
            <th scope="col"><span class="visually-hidden">Actions</span></th>
          </tr>
        </thead>
        <tbody>
          @for (s of sessions.sessions(); track s.id) {
            <tr [class.current]="s.id === sessions.active()?.id">
              <td data-label="Description">
                {{ s.description }}
                @if (s.powers) {
                  <div class="small"><span class="badge">powers</span> may make or unmake administrators and approvers, and lower a key's required approvers</div>
                }
              </td>
              <td data-label="State"><span class="state" [attr.data-state]="s.state">{{ s.state }}</span></td>
              <td data-label="Opened by">{{ s.creator.displayName }}</td>
              <td data-label="Second administrator">
                @if (authorizers(s); as who) {
                  authorized by {{ who }}
                } @else {
                  <span class="muted">nobody yet</span>
                }
                @if (missing(s) > 0 && s.state === 'PENDING') {
                  <div class="small">needs {{ missing(s) }} more authorization{{ missing(s) === 1 ? '' : 's' }} (not {{ s.creator.displayName }})</div>
                }
              </td>
              <td data-label="Expires / ended">
                @if (s.closedAt) {
                  closed <app-datetime [value]="s.closedAt" />
                } @else {
                  <app-datetime [value]="s.expiresAt" [relative]="s.state === 'PENDING' || s.state === 'ACTIVE'" />
                }
              </td>
              <td data-label="Actions" class="row-actions">
                @if (canAuthorize(s)) {
                  <button mat-flat-button type="button" [disabled]="busy()" (click)="authorize(s)" [attr.aria-label]="'Authorize ' + s.description">Authorize</button>
                }
                @if (s.state === 'PENDING' || s.state === 'ACTIVE') {
                  <button mat-stroked-button type="button" [disabled]="busy()" (click)="close(s)" [attr.aria-label]="'Close ' + s.description">Close</button>
                }
                @if (isUsable(s)) {
                  <span class="badge">You act in this session</span>
                }
              </td>
            </tr>
          }
        </tbody>
      </table>
    }
    <app-list-state
      [loading]="sessions.loading()"
      [loaded]="true"
      [problem]="sessions.problem()"
      [count]="sessions.sessions().length"
      emptyText="No administrative session in the last days."
      (retry)="sessions.refresh()"
    />
  `,
})
export class AdminSessionsComponent {
  protected readonly sessions = inject(AdminSessionsService);
  private readonly auth = inject(AuthService);
  private readonly snack = inject(MatSnackBar);
  protected readonly description = new FormControl('', { nonNullable: true, validators: [Validators.required, Validators.minLength(8), Validators.maxLength(500)] });
  /** ADR 0044: only such a session may give or take the administrator and approver natures; authorizers see it. */
  protected readonly powers = new FormControl(false, { nonNullable: true });
  protected readonly openForm = new FormGroup({ description: this.description, powers: this.powers });
  protected readonly busy = signal(false);
  protected readonly problem = signal<Problem | null>(null);
  private readonly myId = computed(() => this.auth.me()?.subjectId ?? null);

  constructor() {
    void this.sessions.refresh();
  }

  /** Who authorized the session besides the administrator who opened it (the API lists the creator first). */
  protected authorizers(s: AdminSessionView): string {
    return s.authorizedBy
      .filter((a) => a.subjectId !== s.creator.subjectId)
      .map((a) => a.displayName)
      .join(', ');
  }

  protected missing(s: AdminSessionView): number {
    return Math.max(0, s.authorizationsRequired - s.authorizedBy.length);
  }

  protected isUsable(s: AdminSessionView): boolean {
    return isUsableBy(s, this.myId());
  }

  protected canAuthorize(s: AdminSessionView): boolean {
    const me = this.myId();
    return s.state === 'PENDING' && !!me && !s.authorizedBy.some((a) => a.subjectId === me) && s.creator.subjectId !== me;
  }

  protected async open(): Promise<void> {
    this.description.setValue(this.description.value.trim());
    this.description.markAsTouched();
    if (this.description.invalid) return;
    if (await this.run(() => this.sessions.open(this.description.value, this.powers.value), 'Session opened: another administrator must authorize it.')) this.openForm.reset();
  }

  protected authorize(s: AdminSessionView): Promise<boolean> {
    return this.run(() => this.sessions.authorize(s.id), 'Session authorized.');
  }

  protected close(s: AdminSessionView): Promise<boolean> {
    return this.run(() => this.sessions.close(s.id), 'Session closed.');
  }

  private async run(call: () => Observable<AdminSessionView>, done: string): Promise<boolean> {
    this.busy.set(true);
    this.problem.set(null);
    try {
      await firstValueFrom(call());
      this.snack.open(done, undefined, { duration: 4000 });
      await this.sessions.refresh();
      return true;
    } catch (err) {
      this.problem.set(toProblem(err));
      return false;
    } finally {
      this.busy.set(false);
    }
  }
}
