import { ChangeDetectionStrategy, Component, inject, signal } from '@angular/core';
import { DatePipe, JsonPipe } from '@angular/common';
import { FormControl, FormGroup, ReactiveFormsModule, Validators } from '@angular/forms';
import { firstValueFrom } from 'rxjs';
import { MatButtonModule } from '@angular/material/button';
import { MatFormFieldModule } from '@angular/material/form-field';
import { MatInputModule } from '@angular/material/input';
import { MatSelectModule } from '@angular/material/select';
import type { AuditEventView, AuditVerification } from '../../core/api-types';
import { AuditService, type AuditFilter } from '../../core/audit.service';
import { CursorList } from '../../core/cursor-list';
import { toProblem, type Problem } from '../../core/problem';
import { ListStateComponent } from '../../shared/list-state.component';
import { ProblemMessageComponent } from '../../shared/problem-message.component';

const GUID = /^\s*[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\s*$/;

/** `/audit`: the audit log with filters, page by page, and the hash-chain verification status. */
@Component({
  selector: 'app-audit',
  imports: [DatePipe, JsonPipe, ReactiveFormsModule, MatButtonModule, MatFormFieldModule, MatInputModule, MatSelectModule, ListStateComponent, ProblemMessageComponent],
  changeDetection: ChangeDetectionStrategy.OnPush,
  template: `
    <div class="page-header"><h1>Audit log</h1></div>
    <section class="panel" aria-labelledby="verify-title">
      <h2 id="verify-title">Hash chain</h2>
      <div role="status" aria-live="polite">
        @if (verifying()) {
          <p>Verifying the hash chain…</p>
        } @else if (verification(); as v) {
          @if (v.ok) {
            <p class="ok">Intact: {{ v.checked }} entries checked, every hash links to the previous one.</p>
          } @else {
            <p class="bad">Broken: the chain does not verify at entry {{ v.firstBadSeq ?? '?' }} ({{ v.checked }} checked). Report this to the security officer.</p>
          }
        }
      </div>
      <app-problem-message [problem]="verifyProblem()" />
      <button mat-stroked-button type="button" [disabled]="verifying()" (click)="verify()">Verify again</button>
    </section>

    <form class="filters" [formGroup]="filters" (ngSubmit)="search()" aria-label="Filter the audit log">
      <mat-form-field appearance="outline">
        <mat-label>Action</mat-label>
        <input matInput formControlName="action" placeholder="operation.approve" />
        <mat-error>Lower-case letters, digits, . _ -</mat-error>
      </mat-form-field>
      <mat-form-field appearance="outline">
        <mat-label>Outcome</mat-label>
        <mat-select formControlName="outcome">
          <mat-option value="">Any</mat-option>
          <mat-option value="SUCCESS">Success</mat-option>
          <mat-option value="DENIED">Denied</mat-option>
          <mat-option value="FAILED">Failed</mat-option>
        </mat-select>
      </mat-form-field>
      <mat-form-field appearance="outline">
        <mat-label>Actor object id</mat-label>
        <input matInput formControlName="actor" />
        <mat-error>A GUID.</mat-error>
      </mat-form-field>
      <mat-form-field appearance="outline">
        <mat-label>Key id</mat-label>
        <input matInput formControlName="keyid" />
      </mat-form-field>
      <mat-form-field appearance="outline">
        <mat-label>Operation id</mat-label>
        <input matInput formControlName="operationId" />
        <mat-error>A UUID.</mat-error>
      </mat-form-field>
      <mat-form-field appearance="outline">
        <mat-label>From</mat-label>
        <input matInput type="datetime-local" formControlName="from" />
      </mat-form-field>
      <mat-form-field appearance="outline">
        <mat-label>To</mat-label>
        <input matInput type="datetime-local" formControlName="to" />
      </mat-form-field>
      <button mat-flat-button type="submit">Search</button>
    </form>

    @if (list.items().length) {
      <table class="simple-table">
        <caption class="visually-hidden">Audit entries, newest first</caption>
        <thead>
          <tr><th scope="col">#</th><th scope="col">When</th><th scope="col">Action</th><th scope="col">Outcome</th><th scope="col">Actor</th><th scope="col">Key / operation</th><th scope="col">Details</th></tr>
        </thead>
        <tbody>
          @for (e of list.items(); track e.seq) {
            <tr>
              <td>{{ e.seq }}</td>
              <td>{{ e.at | date: 'medium' }}</td>
              <td><code>{{ e.action }}</code></td>
              <td><span class="state" [attr.data-state]="e.outcome">{{ e.outcome }}</span>@if (e.errorCode) { <div class="small"><code>{{ e.errorCode }}</code></div> }</td>
              <td>{{ e.actorName ?? e.actorOid ?? e.actorClient ?? '—' }}</td>
              <td>
                @if (e.keyid) { <div><code>{{ e.keyid }}</code></div> }
                @if (e.operationId) { <div class="small"><code>{{ e.operationId }}</code></div> }
              </td>
              <td>
                <details>
                  <summary>Show</summary>
                  <pre class="json">{{ e.details | json }}</pre>
                  <div class="small">hash <code>{{ e.hash }}</code></div>
                  <div class="small">previous <code>{{ e.prevHash }}</code></div>
                  @if (e.requestId) { <div class="small">request <code>{{ e.requestId }}</code></div> }
                </details>
              </td>
            </tr>
          }
        </tbody>
      </table>
    }
    <app-list-state [list]="list" emptyText="No audit entry matches." (retry)="search()" />
  `,
})
export class AuditComponent {
  private readonly api = inject(AuditService);
  protected readonly filters = new FormGroup({
    action: new FormControl('', { nonNullable: true, validators: [Validators.pattern(/^\s*[a-z0-9._-]{0,100}\s*$/)] }),
    outcome: new FormControl<AuditFilter['outcome']>('', { nonNullable: true }),
    actor: new FormControl('', { nonNullable: true, validators: [Validators.pattern(GUID)] }),
    keyid: new FormControl('', { nonNullable: true, validators: [Validators.maxLength(128)] }),
    operationId: new FormControl('', { nonNullable: true, validators: [Validators.pattern(GUID)] }),
    from: new FormControl('', { nonNullable: true }),
    to: new FormControl('', { nonNullable: true }),
  });
  protected readonly list = new CursorList<AuditEventView>((c) => this.api.list(this.query(), c));
  protected readonly verification = signal<AuditVerification | null>(null);
  protected readonly verifying = signal(false);
  protected readonly verifyProblem = signal<Problem | null>(null);

  constructor() {
    void this.list.reset();
    void this.verify();
  }

  protected search(): void {
    if (this.filters.invalid) return;
    void this.list.reset();
  }

  protected async verify(): Promise<void> {
    this.verifying.set(true);
    this.verifyProblem.set(null);
    try {
      this.verification.set(await firstValueFrom(this.api.verify()));
    } catch (err) {
      this.verification.set(null);
      this.verifyProblem.set(toProblem(err));
    } finally {
      this.verifying.set(false);
    }
  }

  private query(): AuditFilter {
    const v = this.filters.getRawValue();
    return { ...v, from: v.from ? new Date(v.from).toISOString() : undefined, to: v.to ? new Date(v.to).toISOString() : undefined };
  }
}
