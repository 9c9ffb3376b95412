import { DateTimeComponent } from '../../shared/datetime.component';
import { ChangeDetectionStrategy, Component, inject, signal } from '@angular/core';
import { JsonPipe } from '@angular/common';
import { FormControl, FormGroup, ReactiveFormsModule, Validators } from '@angular/forms';
import { firstValueFrom, of } from 'rxjs';
import { MatButtonModule } from '@angular/material/button';
import { MatFormFieldModule } from '@angular/material/form-field';
import { MatInputModule } from '@angular/material/input';
import { MatSelectModule } from '@angular/material/select';
import type { AuditEventView, AuditVerification } from '../../core/api-types';
import { AuditService, type AuditFilter } from '../../core/audit.service';
import { CursorList } from '../../core/cursor-list';
import { toProblem, type Problem } from '../../core/problem';
import { localZoneLabel } from '../../core/datetime';
import { ListStateComponent } from '../../shared/list-state.component';
import { ProblemMessageComponent } from '../../shared/problem-message.component';

const GUID = /^\s*[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\s*$/;

/** `/audit`: the audit log with filters, page by page, and the hash-chain verification status. */
@Component({
  selector: 'app-audit',
  imports: [DateTimeComponent, JsonPipe, ReactiveFormsModule, MatButtonModule, MatFormFieldModule, MatInputModule, MatSelectModule, ListStateComponent, ProblemMessageComponent],
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
            <p class="bad">
              Broken: the chain does not verify at entry {{ v.firstBadSeq ?? '?' }} ({{ v.checked }} checked{{ v.reason ? ': ' + v.reason : '' }}). Report this to the security officer.
            </p>
            @if (v.firstBadSeq) {
              <button mat-stroked-button type="button" (click)="showEntry(v.firstBadSeq)">Show entry {{ v.firstBadSeq }}</button>
            }
          }
          @if (v.seal; as seal) {
            @if (seal.sealed) {
              <p class="seal">
                Sealed by the Keyserver's timestamp authority up to entry {{ seal.lastSealedSeq }} (<app-datetime [value]="seal.lastSealedAt" />);
                {{ seal.unsealedEntries }} later {{ seal.unsealedEntries === 1 ? 'entry is' : 'entries are' }} not sealed yet.
              </p>
            } @else {
              <p class="seal">Not sealed: no signed checkpoint verifies (is there an active TSA key?). The chain alone cannot show a rewrite by someone with database access.</p>
            }
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
      <mat-form-field appearance="outline" class="datetime-field">
        <mat-label>From</mat-label>
        <input matInput type="datetime-local" formControlName="from" />
        <mat-hint>{{ zone }}</mat-hint>
      </mat-form-field>
      <mat-form-field appearance="outline" class="datetime-field">
        <mat-label>To</mat-label>
        <input matInput type="datetime-local" formControlName="to" />
      </mat-form-field>
      <button mat-flat-button type="submit">Search</button>
    </form>
    @if (filterInvalid()) {
      <p class="field-error" role="alert">Fix the marked filter: nothing is listed until it is valid.</p>
    }
    @if (startAt()) {
      <p class="hint">Showing the log from entry {{ startAt() }} back. <button mat-button type="button" (click)="clearStart()">Show the newest entries</button></p>
    }

    @if (list.items().length) {
      <table class="simple-table responsive">
        <caption class="visually-hidden">Audit entries, newest first</caption>
        <thead>
          <tr><th scope="col">#</th><th scope="col">When</th><th scope="col">Action</th><th scope="col">Outcome</th><th scope="col">Actor</th><th scope="col">Key / operation</th><th scope="col">Details</th></tr>
        </thead>
        <tbody>
          @for (e of list.items(); track e.seq) {
            <tr [id]="'audit-' + e.seq" [class.current]="e.seq === startAt()" [attr.tabindex]="e.seq === startAt() ? -1 : null">
              <td data-label="#">{{ e.seq }}</td>
              <td data-label="When"><app-datetime [value]="e.at" /></td>
              <td data-label="Action"><code class="action-name">@for (part of actionParts(e.action); track $index) {@if (!$first) {.<wbr />}{{ part }}}</code></td>
              <td data-label="Outcome"><span class="state" [attr.data-state]="e.outcome">{{ e.outcome }}</span>@if (e.errorCode) { <div class="small"><code>{{ e.errorCode }}</code></div> }</td>
              <td data-label="Actor">{{ e.actorName ?? e.actorOid ?? e.actorClient ?? '—' }}</td>
              <td data-label="Key / operation">
                @if (e.keyid) { <div><code>{{ e.keyid }}</code></div> }
                @if (e.operationId) { <div class="small">operation <code>{{ e.operationId }}</code></div> }
                @if (e.digest) { <div class="small">digest <code class="digest">{{ e.digest }}</code></div> }
              </td>
              <td data-label="Details">
                <details>
                  <summary>Show</summary>
                  <pre class="json" tabindex="0" [attr.aria-label]="'Details of entry ' + e.seq">{{ e.details | json }}</pre>
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
  protected readonly zone = localZoneLabel();
  protected readonly filterInvalid = signal(false);
  /** The entry the list starts at ("Show entry N" of a broken chain); null for the newest. */
  protected readonly startAt = signal<string | null>(null);

  constructor() {
    void this.list.reset();
    void this.verify();
  }

  protected search(): void {
    this.filters.markAllAsTouched();
    // An invalid filter must not leave the previous answer on screen as if it were this one's.
    this.filterInvalid.set(this.filters.invalid);
    if (this.filters.invalid) {
      void this.list.reset(() => of({ items: [], nextCursor: null }));
      return;
    }
    this.startAt.set(null);
    void this.list.reset((c) => this.api.list(this.query(), c));
  }

  /** Lists the log from entry `seq` back (cursor = seq + 1, newest first) with no filter, and moves focus to it. */
  protected async showEntry(seq: string): Promise<void> {
    this.filters.reset();
    this.filterInvalid.set(false);
    this.startAt.set(seq);
    const cursor = (BigInt(seq) + 1n).toString();
    await this.list.reset((c) => this.api.list({}, c ?? cursor));
    setTimeout(() => document.getElementById('audit-' + seq)?.focus());
  }

  protected clearStart(): void {
    this.startAt.set(null);
    void this.list.reset((c) => this.api.list(this.query(), c));
  }

  /** An action name split at its dots, so it wraps there and never inside a word. */
  protected actionParts(action: string): string[] {
    return action.split('.');
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
