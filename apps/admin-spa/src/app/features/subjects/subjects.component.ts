import { DateTimeComponent } from '../../shared/datetime.component';
import { ChangeDetectionStrategy, Component, computed, inject, signal } from '@angular/core';
import { FormsModule } from '@angular/forms';
import { RouterLink } from '@angular/router';
import { firstValueFrom, type Observable } from 'rxjs';
import { MatButtonModule } from '@angular/material/button';
import { MatDialog } from '@angular/material/dialog';
import { MatFormFieldModule } from '@angular/material/form-field';
import { MatInputModule } from '@angular/material/input';
import { MatSnackBar } from '@angular/material/snack-bar';
import { MatTabsModule } from '@angular/material/tabs';
import { AdminSessionsService } from '../../core/admin-sessions.service';
import type { RoleView, SubjectView, UnknownPrincipalView } from '../../core/api-types';
import { AuthService } from '../../core/auth.service';
import { Perm } from '../../core/permissions';
import { toProblem, type Problem } from '../../core/problem';
import { SubjectsService } from '../../core/subjects.service';
import { ListStateComponent } from '../../shared/list-state.component';
import { ProblemMessageComponent } from '../../shared/problem-message.component';
import { RoleDialogComponent, type RoleDialogData, type RoleDialogResult } from './role-dialog.component';
import { SubjectDialogComponent, type SubjectDialogData, type SubjectDialogResult } from './subject-dialog.component';

/** Rows rendered at once; "Show more" reveals the next slice (the API returns these lists whole). */
const SLICE = 100;

/** `/subjects`: subjects, roles and unknown principals; changes only inside an active admin session. */
@Component({
  selector: 'app-subjects',
  imports: [DateTimeComponent, FormsModule, RouterLink, MatButtonModule, MatFormFieldModule, MatInputModule, MatTabsModule, ListStateComponent, ProblemMessageComponent],
  changeDetection: ChangeDetectionStrategy.OnPush,
  template: `
    <div class="page-header">
      <h1>Subjects and roles</h1>
      <button mat-stroked-button type="button" (click)="load()">Refresh</button>
    </div>
    @if (!canEdit()) {
      <p class="hint" id="edit-hint" role="note">
        Changes are disabled: open an administrative session and have it authorized on the
        <a routerLink="/admin-sessions">Admin sessions</a> page first.
      </p>
    }
    <app-problem-message [problem]="actionProblem()" />
    <mat-tab-group>
      <mat-tab label="Subjects ({{ subjects().length }})">
        <div class="filters">
          <mat-form-field appearance="outline" class="grow">
            <mat-label>Filter by name, username or oid</mat-label>
            <input matInput [ngModel]="filter()" (ngModelChange)="filter.set($event); shown.set(slice)" />
          </mat-form-field>
        </div>
        @if (filtered().length) {
          <table class="simple-table responsive">
            <caption class="visually-hidden">Subjects</caption>
            <thead>
              <tr><th scope="col">Name</th><th scope="col">Kind</th><th scope="col">Roles</th><th scope="col">Natures</th><th scope="col">Enabled</th><th scope="col"><span class="visually-hidden">Actions</span></th></tr>
            </thead>
            <tbody>
              @for (s of filtered().slice(0, shown()); track s.id) {
                <tr>
                  <td data-label="Name">{{ s.displayName }}<div class="muted small">{{ s.username ?? s.oid }}</div></td>
                  <td data-label="Kind">{{ s.kind }}@if (s.kind === 'USER') {<div class="muted small" [title]="'Account kind the last sign-in proved (acct)'">{{ s.account }} account</div>}</td>
                  <td data-label="Roles">{{ s.roles.join(', ') || '—' }}</td>
                  <td data-label="Natures">{{ s.natures.join(', ') || '—' }}</td>
                  <td data-label="Enabled">{{ s.enabled ? 'Yes' : 'No' }}</td>
                  <td data-label="Actions" class="row-actions">
                    <button mat-button type="button" [disabled]="!canEdit()" [attr.aria-describedby]="canEdit() ? null : 'edit-hint'" (click)="editSubject(s)" [attr.aria-label]="'Edit ' + s.displayName">Edit</button>
                  </td>
                </tr>
              }
            </tbody>
          </table>
          @if (filtered().length > shown()) {
            <button mat-stroked-button type="button" (click)="shown.set(shown() + slice)">Show more ({{ filtered().length - shown() }} left)</button>
          }
        }
        <app-list-state [loading]="loading()" [loaded]="loaded()" [problem]="problem()" [count]="filtered().length" emptyText="No subject matches." (retry)="load()" />
      </mat-tab>
      <mat-tab label="Roles ({{ roles().length }})">
        <div class="actions">
          <button mat-flat-button type="button" [disabled]="!canEdit()" [attr.aria-describedby]="canEdit() ? null : 'edit-hint'" (click)="createRole()">New role</button>
        </div>
        @if (roles().length) {
          <table class="simple-table responsive">
            <caption class="visually-hidden">Roles</caption>
            <thead>
              <tr><th scope="col">Name</th><th scope="col">Description</th><th scope="col">Natures</th><th scope="col">Keys</th><th scope="col"><span class="visually-hidden">Actions</span></th></tr>
            </thead>
            <tbody>
              @for (r of roles(); track r.name) {
                <tr>
                  <td data-label="Name"><code>{{ r.name }}</code></td>
                  <td data-label="Description">{{ r.description }}</td>
                  <td data-label="Natures">{{ r.natures.join(', ') || '—' }}</td>
                  <td data-label="Keys">
                    @for (k of r.keys; track k.keyid) {
                      <div><code>{{ k.keyid }}</code>: {{ k.permissions.join(', ') }}</div>
                    } @empty {
                      —
                    }
                  </td>
                  <td data-label="Actions" class="row-actions">
                    <button mat-button type="button" [disabled]="!canEdit()" [attr.aria-describedby]="canEdit() ? null : 'edit-hint'" (click)="editRole(r)" [attr.aria-label]="'Edit role ' + r.name">Edit</button>
                  </td>
                </tr>
              }
            </tbody>
          </table>
        } @else if (loaded()) {
          <p class="empty">No role yet.</p>
        }
      </mat-tab>
      <mat-tab label="Unknown principals ({{ unknown().length }})">
        <p class="muted">Principals that presented a valid token but are not registered. Register one to give it roles.</p>
        @if (unknown().length) {
          <table class="simple-table responsive">
            <caption class="visually-hidden">Unknown principals</caption>
            <thead>
              <tr><th scope="col">Name</th><th scope="col">Kind</th><th scope="col">Object id</th><th scope="col">Last seen</th><th scope="col">Attempts</th><th scope="col"><span class="visually-hidden">Actions</span></th></tr>
            </thead>
            <tbody>
              @for (u of unknown(); track u.tid + u.oid) {
                <tr>
                  <td data-label="Name">{{ u.displayName ?? u.username ?? '—' }}</td>
                  <td data-label="Kind">{{ u.kind }}</td>
                  <td data-label="Object id"><code>{{ u.oid }}</code></td>
                  <td data-label="Last seen"><app-datetime [value]="u.lastSeenAt" /></td>
                  <td data-label="Attempts">{{ u.attempts }}</td>
                  <td data-label="Actions" class="row-actions">
                    <button mat-button type="button" [disabled]="!canEdit()" [attr.aria-describedby]="canEdit() ? null : 'edit-hint'" (click)="register(u)" [attr.aria-label]="'Register ' + (u.displayName ?? u.oid)">Register</button>
                  </td>
                </tr>
              }
            </tbody>
          </table>
        } @else if (loaded()) {
          <p class="empty">No unknown principal.</p>
        }
      </mat-tab>
    </mat-tab-group>
  `,
})
export class SubjectsComponent {
  private readonly api = inject(SubjectsService);
  private readonly auth = inject(AuthService);
  private readonly adminSessions = inject(AdminSessionsService);
  private readonly dialog = inject(MatDialog);
  private readonly snack = inject(MatSnackBar);
  protected readonly slice = SLICE;
  protected readonly subjects = signal<SubjectView[]>([]);
  protected readonly roles = signal<RoleView[]>([]);
  protected readonly unknown = signal<UnknownPrincipalView[]>([]);
  protected readonly loading = signal(false);
  protected readonly loaded = signal(false);
  protected readonly problem = signal<Problem | null>(null);
  protected readonly actionProblem = signal<Problem | null>(null);
  protected readonly filter = signal('');
  protected readonly shown = signal(SLICE);
  protected readonly filtered = computed(() => {
    const f = this.filter().trim().toLowerCase();
    const all = this.subjects();
    if (!f) return all;
    return all.filter((s) => s.displayName.toLowerCase().includes(f) || (s.username ?? '').toLowerCase().includes(f) || s.oid.toLowerCase().includes(f));
  });
  /** Editing needs the admin permissions and an ACTIVE session the user takes part in. */
  protected readonly canEdit = computed(() => !!this.adminSessions.active() && (this.auth.has(Perm.SubjectsAdmin) || this.auth.has(Perm.RolesAdmin)));

  constructor() {
    void this.load();
  }

  protected async load(): Promise<void> {
    this.loading.set(true);
    this.problem.set(null);
    try {
      const [subjects, roles, unknown] = await Promise.all([
        this.auth.has(Perm.SubjectsRead) ? firstValueFrom(this.api.subjects()) : Promise.resolve([]),
        this.auth.has(Perm.RolesRead) ? firstValueFrom(this.api.roles()) : Promise.resolve([]),
        this.auth.has(Perm.SubjectsRead) ? firstValueFrom(this.api.unknownPrincipals()).catch(() => []) : Promise.resolve([]),
      ]);
      this.subjects.set(subjects);
      this.roles.set(roles);
      this.unknown.set(unknown);
      this.loaded.set(true);
    } catch (err) {
      this.problem.set(toProblem(err));
    } finally {
      this.loading.set(false);
    }
  }

  protected async editSubject(s: SubjectView): Promise<void> {
    const v = await this.openSubject({ mode: 'edit', roles: this.roleNames(), value: { ...s, roles: [...s.roles] } });
    if (v) await this.run(() => this.api.updateSubject(s.id, { displayName: v.displayName, username: v.username, roles: v.roles, enabled: v.enabled }), 'Subject saved.');
  }

  protected async register(u: UnknownPrincipalView): Promise<void> {
    const v = await this.openSubject({
      mode: 'create',
      roles: this.roleNames(),
      value: { kind: u.kind, tid: u.tid, oid: u.oid, displayName: u.displayName ?? u.username ?? '', username: u.username, roles: [], enabled: true },
    });
    if (v) await this.run(() => this.api.createSubject({ kind: v.kind, tid: v.tid, oid: v.oid, displayName: v.displayName, username: v.username, roles: v.roles }), 'Subject registered.');
  }

  protected async createRole(): Promise<void> {
    const v = await this.openRole({ mode: 'create', role: null });
    if (v) await this.run(() => this.api.createRole(v), 'Role created.');
  }

  protected async editRole(r: RoleView): Promise<void> {
    const v = await this.openRole({ mode: 'edit', role: r });
    if (v) await this.run(() => this.api.updateRole(r.name, { description: v.description, natures: v.natures, keys: v.keys }), 'Role saved.');
  }

  private roleNames(): string[] {
    return this.roles().map((r) => r.name);
  }

  private openSubject(data: SubjectDialogData): Promise<SubjectDialogResult | undefined> {
    return firstValueFrom(this.dialog.open<SubjectDialogComponent, SubjectDialogData, SubjectDialogResult>(SubjectDialogComponent, { data, width: '36rem' }).afterClosed());
  }

  private openRole(data: RoleDialogData): Promise<RoleDialogResult | undefined> {
    return firstValueFrom(this.dialog.open<RoleDialogComponent, RoleDialogData, RoleDialogResult>(RoleDialogComponent, { data, width: '40rem' }).afterClosed());
  }

  private async run(call: () => Observable<unknown>, done: string): Promise<void> {
    this.actionProblem.set(null);
    try {
      await firstValueFrom(call());
      this.snack.open(done, undefined, { duration: 4000 });
      await this.load();
    } catch (err) {
      this.actionProblem.set(toProblem(err));
    }
  }
}
