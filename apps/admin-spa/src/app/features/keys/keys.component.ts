import { DateTimeComponent } from '../../shared/datetime.component';
import { ChangeDetectionStrategy, Component, ElementRef, computed, inject, signal, viewChild } from '@angular/core';
import { RouterLink } from '@angular/router';
import { firstValueFrom, type Observable } from 'rxjs';
import { MatButtonModule } from '@angular/material/button';
import { MatCheckboxModule, type MatCheckboxChange } from '@angular/material/checkbox';
import { MatDialog } from '@angular/material/dialog';
import { MatSnackBar } from '@angular/material/snack-bar';
import { AdminSessionsService } from '../../core/admin-sessions.service';
import type { CreateKeyBody, KeyDetailView, KeyRevocationReasonName, KeyRevocationView, KeySummaryView } from '../../core/api-types';
import { AuthService } from '../../core/auth.service';
import { downloadText, joinPem } from '../../core/download';
import { KeysService } from '../../core/keys.service';
import { Perm } from '../../core/permissions';
import { toProblem, type Problem } from '../../core/problem';
import { ListStateComponent } from '../../shared/list-state.component';
import { ProblemMessageComponent } from '../../shared/problem-message.component';
import { ApproversDialogComponent, type ApproversDialogData } from './approvers-dialog.component';
import { KeyDialogComponent } from './key-dialog.component';
import { ExternalChainComponent } from './external-chain.component';
import { KeyLifecycleComponent } from './key-lifecycle.component';
import { RevokeDialogComponent, type RevokeDialogData } from '../../shared/revoke-dialog.component';

/**
 * `/keys`: the keys I may see (ACTIVE ones, or every state with "Show revoked keys"), with certificate and chain
 * downloads (PEM). Key administrators create keys, change their approvers and revoke them, only inside an ACTIVE
 * admin session they take part in; a revoked key and the ROOT are never offered for revocation. The detail of an
 * imported ROOT takes the renewed external chain (ExternalChainComponent).
 */
@Component({
  selector: 'app-keys',
  imports: [DateTimeComponent, RouterLink, MatButtonModule, MatCheckboxModule, ListStateComponent, ProblemMessageComponent, KeyLifecycleComponent, ExternalChainComponent],
  changeDetection: ChangeDetectionStrategy.OnPush,
  // A key id is read as one word: never broken inside; narrower cells keep seven columns and the actions in 1280 px.
  styles: `
    .unbroken {
      white-space: nowrap;
    }
    .simple-table th,
    .simple-table td {
      padding-inline: 0.5rem;
    }
  `,
  template: `
    <div class="page-header">
      <h1 #title tabindex="-1">Keys</h1>
      <button mat-stroked-button type="button" (click)="load()">Refresh</button>
    </div>
    @if (isAdmin()) {
      @if (!canEdit()) {
        <p class="hint" id="key-edit-hint" role="note">
          Creating, changing and revoking keys is disabled: open an administrative session and have it authorized on the
          <a routerLink="/admin-sessions">Admin sessions</a> page first.
        </p>
      }
      <div class="actions">
        <button mat-flat-button type="button" [disabled]="!canEdit()" [attr.aria-describedby]="canEdit() ? null : 'key-edit-hint'" (click)="createKey()">New key</button>
      </div>
    }
    <div class="filters">
      <mat-checkbox [checked]="showRevoked()" (change)="setShowRevoked($event)">Show revoked keys</mat-checkbox>
    </div>
    <app-problem-message [problem]="actionProblem()" />
    @if (keys().length) {
      <table class="simple-table responsive">
        <caption class="visually-hidden">Keys</caption>
        <thead>
          <tr>
            <th scope="col">Key id</th><th scope="col">Type</th><th scope="col">Algorithm</th><th scope="col">Approvers</th><th scope="col">State</th>
            <th scope="col">Product</th><th scope="col"><span class="visually-hidden">Actions</span></th>
          </tr>
        </thead>
        <tbody>
          @for (k of keys(); track k.keyid) {
            <tr>
              <td data-label="Key id" class="unbroken"><code>{{ k.keyid }}</code></td>
              <td data-label="Type">{{ k.type }}</td>
              <td data-label="Algorithm">{{ k.algorithm }} / {{ k.hash }}</td>
              <td data-label="Approvers">{{ k.requiredApprovers }}</td>
              <td data-label="State"><span class="state" [attr.data-state]="k.state">{{ k.state }}</span></td>
              <td data-label="Product">{{ k.product ?? '—' }}</td>
              <td data-label="Actions" class="row-actions">
                <button mat-button type="button" (click)="details(k)" [attr.aria-label]="'Details of ' + k.keyid">Details</button>
                <button mat-button type="button" (click)="downloadCertificate(k)" [attr.aria-label]="'Download the certificate of ' + k.keyid">Certificate</button>
                <button mat-button type="button" (click)="downloadChain(k.keyid)" [attr.aria-label]="'Download the chain of ' + k.keyid">Chain</button>
                <!-- A revoked key is kept for reading only: nothing to change on it. -->
                @if (isAdmin() && k.state === 'ACTIVE') {
                  <button mat-button type="button" [disabled]="!canEdit()" [attr.aria-describedby]="canEdit() ? null : 'key-edit-hint'" (click)="changeApprovers(k)" [attr.aria-label]="'Change approvers of ' + k.keyid">Approvers</button>
                  @if (k.type !== 'ROOT') {
                    <button mat-button type="button" class="danger" [disabled]="!canEdit()" [attr.aria-describedby]="canEdit() ? null : 'key-edit-hint'" (click)="revoke(k)" [attr.aria-label]="'Revoke ' + k.keyid">Revoke</button>
                  }
                }
              </td>
            </tr>
          }
        </tbody>
      </table>
    }
    <app-list-state [loading]="loading()" [loaded]="loaded()" [problem]="problem()" [count]="keys().length" [emptyText]="showRevoked() ? 'No key is visible to you.' : 'No active key is visible to you.'" (retry)="load()" />
    @if (detail(); as d) {
      <section class="panel" aria-labelledby="key-detail-title">
        <h2 id="key-detail-title">Key <code>{{ d.keyid }}</code></h2>
        <dl class="facts">
          <dt>Type</dt><dd>{{ d.type }}</dd>
          <dt>Algorithm</dt><dd>{{ d.algorithm }} / {{ d.hash }}</dd>
          <dt>State</dt><dd><span class="state" [attr.data-state]="d.state">{{ d.state }}</span></dd>
          <dt>Approvers required</dt><dd>{{ d.requiredApprovers }}</dd>
          <dt>Product</dt><dd>{{ d.product ?? '—' }}</dd>
          <dt>Valid</dt><dd><app-datetime [value]="d.notBefore" [dateOnly]="true" /> – <app-datetime [value]="d.notAfter" [dateOnly]="true" /></dd>
          <dt>Chain</dt><dd>{{ d.chain.length }} certificate{{ d.chain.length === 1 ? '' : 's' }}</dd>
        </dl>
      </section>
      <app-key-lifecycle [keyid]="d.keyid" [keyState]="d.state" [keyCertificate]="d.certificate" [canEdit]="canEdit()" (changed)="refresh(d.keyid)" />
      <!-- An imported ROOT: the chain above it (and its certificate) as the offline CA renews them (ADR 0020 addendum). -->
      @if (isAdmin() && d.type === 'ROOT' && d.state === 'ACTIVE' && d.chain.length > 1) {
        <app-external-chain [key]="d" [canEdit]="canEdit()" (changed)="refresh(d.keyid)" />
      }
    }
  `,
})
export class KeysComponent {
  private readonly api = inject(KeysService);
  private readonly auth = inject(AuthService);
  private readonly adminSessions = inject(AdminSessionsService);
  private readonly dialog = inject(MatDialog);
  private readonly snack = inject(MatSnackBar);
  private readonly title = viewChild.required<ElementRef<HTMLElement>>('title');
  protected readonly keys = signal<KeySummaryView[]>([]);
  /** Off: only ACTIVE keys are listed (what can still be used); on: revoked keys too, with their state. */
  protected readonly showRevoked = signal(false);
  protected readonly loading = signal(false);
  protected readonly loaded = signal(false);
  protected readonly problem = signal<Problem | null>(null);
  protected readonly actionProblem = signal<Problem | null>(null);
  protected readonly detail = signal<KeyDetailView | null>(null);
  /** Only the answer to the latest load is shown (the toggle can change while one is on its way). */
  private loadSeq = 0;
  /** Key administrators see the actions; they work only inside an ACTIVE session the user takes part in. */
  protected readonly isAdmin = computed(() => this.auth.has(Perm.KeysAdmin));
  protected readonly canEdit = computed(() => this.isAdmin() && !!this.adminSessions.active());

  constructor() {
    void this.load();
  }

  protected async load(): Promise<void> {
    const seq = ++this.loadSeq;
    this.loading.set(true);
    this.problem.set(null);
    try {
      const keys = await firstValueFrom(this.api.summaries(this.showRevoked() ? {} : { state: 'ACTIVE' }));
      if (seq !== this.loadSeq) return;
      this.keys.set(keys);
      this.loaded.set(true);
    } catch (err) {
      if (seq === this.loadSeq) this.problem.set(toProblem(err));
    } finally {
      if (seq === this.loadSeq) this.loading.set(false);
    }
  }

  protected setShowRevoked(e: MatCheckboxChange): void {
    this.showRevoked.set(e.checked);
    void this.load();
  }

  protected async details(k: KeySummaryView): Promise<void> {
    this.actionProblem.set(null);
    try {
      this.detail.set(await firstValueFrom(this.api.get(k.keyid)));
    } catch (err) {
      this.actionProblem.set(toProblem(err));
    }
  }

  /** After a lifecycle change in the detail: its facts and the list again. */
  protected async refresh(keyid: string): Promise<void> {
    await this.details({ keyid } as KeySummaryView);
    await this.load();
  }

  protected downloadCertificate(k: KeySummaryView): void {
    downloadText(`${k.keyid}.pem`, joinPem([k.certificate]));
  }

  protected async downloadChain(keyid: string): Promise<void> {
    this.actionProblem.set(null);
    try {
      const d = await firstValueFrom(this.api.get(keyid));
      downloadText(`${keyid}-chain.pem`, joinPem(d.chain));
    } catch (err) {
      this.actionProblem.set(toProblem(err));
    }
  }

  protected async createKey(): Promise<void> {
    const body = await firstValueFrom(this.dialog.open<KeyDialogComponent, void, CreateKeyBody>(KeyDialogComponent, { width: '40rem' }).afterClosed());
    // The new key's facts are shown below the list.
    if (body) await this.run(() => this.api.create(body), `Key ${body.keyid} created.`, true);
  }

  protected async changeApprovers(k: KeySummaryView): Promise<void> {
    this.actionProblem.set(null);
    let current: KeyDetailView;
    try {
      current = await firstValueFrom(this.api.get(k.keyid));
    } catch (err) {
      this.actionProblem.set(toProblem(err));
      return;
    }
    const n = await firstValueFrom(
      this.dialog
        .open<ApproversDialogComponent, ApproversDialogData, number>(ApproversDialogComponent, { data: { keyid: k.keyid, requiredApprovers: current.requiredApprovers }, width: '28rem' })
        .afterClosed(),
    );
    // Only Save closes with a number: Cancel, Escape and a click outside close with '' or undefined (a bare mat-dialog-close).
    if (typeof n === 'number') await this.run(() => this.api.setRequiredApprovers(k.keyid, n), `Key ${k.keyid} now needs ${n} approver(s).`);
  }

  protected async revoke(k: KeySummaryView): Promise<void> {
    // A CA takes every key below it with it (ADR 0041): say so, with the ones listed here.
    const below = k.type === 'CA' ? keysBelow(k.keyid, this.keys()) : [];
    const cascade = k.type === 'CA' ? ` Every key below it is revoked with it${below.length ? ` (active now: ${below.join(', ')})` : ''}.` : '';
    const reason = await firstValueFrom(
      this.dialog
        .open<RevokeDialogComponent, RevokeDialogData, KeyRevocationReasonName>(RevokeDialogComponent, {
          data: { title: `Revoke key ${k.keyid}`, detail: `The key will no longer sign or issue, and its certificate goes on its issuer's revocation list.${cascade}` },
          width: '32rem',
        })
        .afterClosed(),
    );
    if (!reason) return;
    const done = (r: KeyRevocationView) =>
      r.revokedBelow.length ? `Key ${k.keyid} revoked, and with it ${r.revokedBelow.length} key(s) below it: ${r.revokedBelow.map((b) => b.keyid).join(', ')}.` : `Key ${k.keyid} revoked.`;
    // The button focus went back to goes away (the row leaves the list, or stays as REVOKED without actions): move it to the heading.
    if (await this.run(() => this.api.revoke(k.keyid, reason), done)) this.title().nativeElement.focus();
  }

  /** Runs a change, then reloads the list; the changed key replaces the detail shown for it (or is shown, `show`). */
  private async run<T extends KeyDetailView>(call: () => Observable<T>, done: string | ((changed: T) => string), show = false): Promise<boolean> {
    this.actionProblem.set(null);
    try {
      const changed = await firstValueFrom(call());
      if (show || this.detail()?.keyid === changed.keyid) this.detail.set(changed);
      this.snack.open(typeof done === 'string' ? done : done(changed), undefined, { duration: 4000 });
      await this.load();
      return true;
    } catch (err) {
      this.actionProblem.set(toProblem(err));
      return false;
    }
  }
}

/** The keys of `keys` below `keyid` (certified by it, or by a key below it), each after its issuer. */
function keysBelow(keyid: string, keys: KeySummaryView[]): string[] {
  const below: string[] = [];
  for (let level = [keyid]; level.length; ) {
    level = keys.filter((k) => k.parentKeyid !== null && level.includes(k.parentKeyid)).map((k) => k.keyid);
    below.push(...level);
  }
  return below;
}
