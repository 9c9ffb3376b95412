import { ChangeDetectionStrategy, Component, ElementRef, computed, inject, signal, viewChild } from '@angular/core';
import { FormControl, FormGroup, ReactiveFormsModule, Validators } from '@angular/forms';
import { RouterLink } from '@angular/router';
import { firstValueFrom } from 'rxjs';
import { MatButtonModule } from '@angular/material/button';
import { MatFormFieldModule } from '@angular/material/form-field';
import { MatInputModule } from '@angular/material/input';
import { AdminSessionsService } from '../../core/admin-sessions.service';
import { HASH_ALGORITHMS, KEY_ALGORITHMS } from '../../core/api-types';
import { downloadText, joinPem } from '../../core/download';
import { RootCeremonyService, type PendingCancellationView, type PendingKey, type RootCeremonyBody, type RootCeremonyResultView } from '../../core/root-ceremony.service';
import { toProblem, type Problem } from '../../core/problem';
import { CopyButtonComponent } from '../../shared/copy-button.component';
import { DateTimeComponent } from '../../shared/datetime.component';
import { ProblemMessageComponent } from '../../shared/problem-message.component';
import { KEYID, MAX_APPROVERS, MAX_VALIDITY_DAYS } from '../keys/key-form';
import { MAX_PATH_LEN, ceremonyForm, colonHex, splitPemCertificates, subjectText, toCeremonyRequest } from './ceremony-form';

/**
 * `/root-ceremony`: the ROOT key ceremony (docs/operations.md §4, ADR 0020) for key administrators, inside an ACTIVE
 * admin session two administrators took part in. Self-signed: the ROOT is generated in the HSM and certifies itself;
 * external: the key waits with a CSR (signed in the HSM) until the certificate the offline root issued is imported
 * (the API verifies key, CA flags and chain). Every step is restated before it runs and is audited by the API.
 */
@Component({
  selector: 'app-root-ceremony',
  imports: [ReactiveFormsModule, RouterLink, MatButtonModule, MatFormFieldModule, MatInputModule, CopyButtonComponent, DateTimeComponent, ProblemMessageComponent],
  changeDetection: ChangeDetectionStrategy.OnPush,
  styles: `
    .grid {
      display: grid;
      grid-template-columns: repeat(auto-fit, minmax(min(100%, 16rem), 1fr));
      gap: 0.25rem 1rem;
      align-items: start;
    }
    .grid mat-form-field,
    .wide mat-form-field {
      width: 100%;
    }
    fieldset {
      border: 1px solid currentColor;
      border-radius: 4px;
      margin: 0 0 1rem;
      padding: 0.5rem 1rem;
    }
    fieldset label {
      display: block;
      margin-block: 0.25rem;
    }
    pre.pem {
      white-space: pre-wrap;
      overflow-wrap: anywhere;
      font-size: 0.8rem;
      max-width: 100%;
    }
    .fingerprint {
      overflow-wrap: anywhere;
    }
    dl.summary {
      display: grid;
      grid-template-columns: minmax(0, max-content) minmax(0, 1fr);
      gap: 0.25rem 1rem;
    }
    @media (max-width: 600px) {
      dl.summary {
        grid-template-columns: minmax(0, 1fr);
      }
      dl.summary dd {
        margin-block-end: 0.5rem;
      }
    }
    dl.summary .state {
      white-space: normal;
      overflow-wrap: anywhere;
    }
    dl.summary dt {
      font-weight: 600;
    }
    dl.summary dd {
      margin: 0;
      overflow-wrap: anywhere;
    }
    section.panel {
      margin-block: 1.5rem;
    }
    .actions {
      display: flex;
      flex-wrap: wrap;
      gap: 0.5rem;
      margin-block: 0.75rem;
    }
    select.native {
      width: 100%;
    }
  `,
  template: `
    <div class="page-header">
      <h1 #title tabindex="-1">ROOT key ceremony</h1>
    </div>
    <p>
      Generates the ROOT key pair in the HSM. Self-signed: the ROOT certifies itself and is active at once. External: the key waits with a
      certificate signing request until you import the certificate your offline root issued.
    </p>
    @if (!session()) {
      <p class="hint" id="ceremony-session-hint" role="note">
        The ceremony needs an active administrative session opened by one administrator and authorized by another: open it on the
        <a routerLink="/admin-sessions">Admin sessions</a> page first.
      </p>
    }
    <app-problem-message [problem]="problem()" />

    @if (!review() && !result()) {
      <form [formGroup]="form" (ngSubmit)="toReview()" aria-label="ROOT key ceremony">
        <fieldset>
          <legend>Mode</legend>
          <label><input type="radio" formControlName="mode" value="self-signed" /> Self-signed ROOT (the Keyserver's own root of trust)</label>
          <label><input type="radio" formControlName="mode" value="external" /> Certified by an existing offline root (a CSR to sign there)</label>
        </fieldset>
        <div class="grid">
          <mat-form-field appearance="outline" subscriptSizing="dynamic">
            <mat-label>Key id</mat-label>
            <input matInput formControlName="keyid" required autocomplete="off" spellcheck="false" />
            <mat-hint>3 to 64 of a-z 0-9 . _ -</mat-hint>
            <mat-error>3 to 64 lower-case letters, digits, . _ -, starting with a letter or digit.</mat-error>
          </mat-form-field>
          <mat-form-field appearance="outline">
            <mat-label>Algorithm</mat-label>
            <select matNativeControl class="native" formControlName="algorithm" required>
              @for (a of algorithms; track a) {
                <option [value]="a">{{ a }}</option>
              }
            </select>
          </mat-form-field>
          <mat-form-field appearance="outline">
            <mat-label>Hash (optional)</mat-label>
            <select matNativeControl class="native" formControlName="hash">
              <option value="">Algorithm's default</option>
              @for (h of hashes; track h) {
                <option [value]="h">{{ h }}</option>
              }
            </select>
          </mat-form-field>
          <mat-form-field appearance="outline" subscriptSizing="dynamic">
            <mat-label>Common name (CN)</mat-label>
            <input matInput formControlName="commonName" required autocomplete="off" />
            <mat-error>1 to 64 characters, one script, no hidden, full-width or styled letters.</mat-error>
          </mat-form-field>
          <mat-form-field appearance="outline" subscriptSizing="dynamic">
            <mat-label>Organization (O, optional)</mat-label>
            <input matInput formControlName="organization" autocomplete="off" />
            <mat-error>Up to 64 characters, one script, no hidden, full-width or styled letters.</mat-error>
          </mat-form-field>
          <mat-form-field appearance="outline" subscriptSizing="dynamic">
            <mat-label>Organizational unit (OU, optional)</mat-label>
            <input matInput formControlName="organizationalUnit" autocomplete="off" />
            <mat-error>Up to 64 characters, one script, no hidden, full-width or styled letters.</mat-error>
          </mat-form-field>
          <mat-form-field appearance="outline" subscriptSizing="dynamic">
            <mat-label>Country (C, optional)</mat-label>
            <input matInput formControlName="country" autocomplete="off" maxlength="2" />
            <mat-hint>Two letters, e.g. DK</mat-hint>
            <mat-error>Two letters (ISO 3166), e.g. DK.</mat-error>
          </mat-form-field>
          <mat-form-field appearance="outline" subscriptSizing="dynamic">
            <mat-label>Validity in days</mat-label>
            <input matInput type="number" formControlName="validityDays" min="1" [max]="maxValidity" step="1" required />
            <mat-error>A whole number from 1 to {{ maxValidity }}.</mat-error>
          </mat-form-field>
          <mat-form-field appearance="outline" subscriptSizing="dynamic">
            <mat-label>Path length (optional)</mat-label>
            <input matInput type="number" formControlName="pathLen" min="0" [max]="maxPathLen" step="1" />
            <mat-hint>CA levels allowed below the ROOT; empty: no constraint</mat-hint>
            <mat-error>A whole number from 0 to {{ maxPathLen }}, or empty.</mat-error>
          </mat-form-field>
          <mat-form-field appearance="outline" subscriptSizing="dynamic">
            <mat-label>Approvers required</mat-label>
            <input matInput type="number" formControlName="requiredApprovers" min="0" [max]="maxApprovers" step="1" required />
            <mat-error>A whole number from 0 to {{ maxApprovers }}.</mat-error>
          </mat-form-field>
        </div>
        <div class="actions">
          <button mat-flat-button type="submit" [disabled]="!session()" [attr.aria-describedby]="session() ? null : 'ceremony-session-hint'">Review the ceremony</button>
        </div>
      </form>
    }

    @if (review(); as r) {
      <section class="panel" aria-labelledby="ceremony-review-title">
        <h2 id="ceremony-review-title" #reviewTitle tabindex="-1">Confirm the ROOT key ceremony</h2>
        <p class="warning" role="note">
          <strong>Two administrators are required.</strong> The ceremony runs in the active administrative session
          @if (session(); as s) {
            “{{ s.description }}”
          }
          and is refused unless two different administrators opened and authorized it. Both are recorded in the audit log.
        </p>
        <dl class="summary">
          <dt>Mode</dt><dd>{{ r.mode === 'self-signed' ? 'Self-signed ROOT' : 'CSR for an external offline root' }}</dd>
          <dt>Key id</dt><dd><code>{{ r.keyid }}</code></dd>
          <dt>Algorithm</dt><dd>{{ r.algorithm }}{{ r.hash ? ' with ' + r.hash : '' }}</dd>
          <dt>Subject</dt><dd>{{ subject(r) }}</dd>
          <dt>Validity</dt><dd>{{ r.validityDays }} days</dd>
          <dt>Path length</dt><dd>{{ r.pathLen ?? 'no constraint' }}</dd>
          <dt>Approvers required</dt><dd>{{ r.requiredApprovers }}</dd>
        </dl>
        <div class="actions">
          <button mat-stroked-button type="button" [disabled]="busy()" (click)="review.set(null)">Back to the form</button>
          <button mat-flat-button type="button" [disabled]="busy()" (click)="run(r)">{{ r.mode === 'self-signed' ? 'Generate and self-sign the ROOT' : 'Generate the key and its CSR' }}</button>
        </div>
      </section>
    }

    @if (result(); as res) {
      <section class="panel" aria-labelledby="ceremony-result-title">
        <h2 id="ceremony-result-title" #resultTitle tabindex="-1">{{ res.state === 'ACTIVE' ? 'ROOT key ' + res.keyid + ' is active' : 'Key ' + res.keyid + ' awaits its certificate' }}</h2>
        <dl class="summary">
          <dt>Key id</dt><dd><code>{{ res.keyid }}</code></dd>
          <dt>State</dt><dd><span class="state" [attr.data-state]="res.state">{{ res.state }}</span></dd>
          <dt>Algorithm</dt><dd>{{ res.algorithm }}</dd>
          <dt>Public key SHA-256</dt>
          <dd><code class="fingerprint" data-testid="spki-sha256">{{ fingerprint(res.spkiSha256) }}</code> <app-copy-button [text]="res.spkiSha256" label="public key fingerprint" /></dd>
          <dt>Administrators</dt><dd>{{ administrators(res) }}</dd>
          <dt>Session</dt><dd><code>{{ res.adminSessionId }}</code></dd>
        </dl>
        <p>Read the fingerprint aloud and record it on the ceremony form; compare it with <code>openssl x509 -noout -pubkey | openssl pkey -pubin -outform DER | sha256sum</code>.</p>
        @if (res.certificate; as cert) {
          <h3>Certificate (PEM)</h3>
          <div class="actions">
            <app-copy-button [text]="cert" label="certificate PEM" />
            <button mat-button type="button" (click)="download(res.keyid + '.pem', cert)">Download certificate</button>
          </div>
          <pre class="pem" aria-label="Certificate PEM" tabindex="0">{{ cert }}</pre>
        }
        <div class="actions">
          <button mat-stroked-button type="button" (click)="startOver()">New ceremony</button>
        </div>
      </section>
    }

    @if (pending(); as pk) {
      <section class="panel" aria-labelledby="pending-title">
        <h2 id="pending-title" #pendingTitle tabindex="-1">Import the certificate of {{ pk.keyid }}</h2>
        @if (pk.version > 1) {
          <p>A rotation: version {{ pk.version }} (a new key pair) replaces the current version once this certificate is imported; the chain must end at the same offline root.</p>
        }
        <p>Created <app-datetime [value]="pk.createdAt" />; public key SHA-256 <code class="fingerprint">{{ fingerprint(pk.spkiSha256) }}</code>.</p>
        <h3>Certificate signing request (PEM)</h3>
        <div class="actions">
          <app-copy-button [text]="pk.csr" label="CSR" />
          <button mat-button type="button" (click)="download(pk.keyid + '.csr', pk.csr, 'application/pkcs10')">Download CSR</button>
        </div>
        <pre class="pem" aria-label="CSR PEM" tabindex="0">{{ pk.csr }}</pre>
        <p>Have the offline root sign it as a CA (CA:true, keyCertSign, cRLSign), then paste its answer:</p>
        <form [formGroup]="importForm" (ngSubmit)="importCertificate(pk.keyid)" aria-label="Import the external certificate" class="wide">
          <mat-form-field appearance="outline" subscriptSizing="dynamic">
            <mat-label>Certificate (PEM)</mat-label>
            <textarea matInput formControlName="certificate" rows="6" spellcheck="false" required></textarea>
            <mat-hint>The certificate the offline root issued for {{ pk.keyid }}</mat-hint>
            <mat-error>Paste one PEM certificate.</mat-error>
          </mat-form-field>
          <mat-form-field appearance="outline" subscriptSizing="dynamic">
            <mat-label>Chain (PEM)</mat-label>
            <textarea matInput formControlName="chain" rows="6" spellcheck="false" required></textarea>
            <mat-hint>The certificates above it, issuer first, ending with the offline root</mat-hint>
            <mat-error>Paste 1 to 8 PEM certificates.</mat-error>
          </mat-form-field>
          <div class="actions">
            <button mat-flat-button type="submit" [disabled]="busy() || !session()">Verify and import</button>
          </div>
        </form>
        <h3>Abandon it</h3>
        @if (confirmCancel()) {
          <p role="alert">Destroy the key pair of {{ pk.keyid }}{{ pk.version > 1 ? ' version ' + pk.version : '' }} in the HSM and end this {{ pk.version > 1 ? 'rotation' : 'ceremony' }}? This cannot be undone; a certificate issued for this CSR later can never be imported.</p>
          <div class="actions">
            <button mat-stroked-button type="button" [disabled]="busy()" (click)="confirmCancel.set(false)">Keep it</button>
            <button mat-flat-button color="warn" type="button" [disabled]="busy() || !session()" (click)="cancelPending(pk)">Destroy the key pair and cancel</button>
          </div>
        } @else {
          <p>If the offline root will not certify this key, cancel the {{ pk.version > 1 ? 'rotation' : 'ceremony' }} (two administrators, like the ceremony).</p>
          <button mat-stroked-button type="button" [disabled]="busy() || !session()" (click)="confirmCancel.set(true)">Cancel this {{ pk.version > 1 ? 'rotation' : 'ceremony' }}…</button>
        }
      </section>
    } @else if (!review()) {
      <section class="panel" aria-labelledby="resume-title">
        <h2 id="resume-title">Continue an external ceremony</h2>
        <form [formGroup]="resumeForm" (ngSubmit)="loadPending()" aria-label="Find a key awaiting its certificate" class="actions">
          <mat-form-field appearance="outline" subscriptSizing="dynamic">
            <mat-label>Key id</mat-label>
            <input matInput formControlName="keyid" autocomplete="off" spellcheck="false" />
          </mat-form-field>
          <button mat-stroked-button type="submit" [disabled]="busy()">Show its CSR</button>
        </form>
      </section>
    }

    @if (imported(); as k) {
      <p class="ok" role="status">Certificate imported: key {{ k }} is active.</p>
    }
    @if (cancelled(); as c) {
      <p class="ok" role="status">{{ c.version > 1 ? 'Rotation of ' + c.keyid + ' to version ' + c.version : 'Ceremony of ' + c.keyid }} cancelled: its key pair was destroyed{{ c.spkiSha256 ? ' (public key SHA-256 ' + fingerprint(c.spkiSha256) + ')' : '' }}.</p>
    }
  `,
})
export class RootCeremonyComponent {
  private readonly api = inject(RootCeremonyService);
  private readonly adminSessions = inject(AdminSessionsService);
  private readonly reviewTitle = viewChild<ElementRef<HTMLElement>>('reviewTitle');
  private readonly resultTitle = viewChild<ElementRef<HTMLElement>>('resultTitle');
  private readonly pendingTitle = viewChild<ElementRef<HTMLElement>>('pendingTitle');
  protected readonly algorithms = KEY_ALGORITHMS;
  protected readonly hashes = HASH_ALGORITHMS;
  protected readonly maxValidity = MAX_VALIDITY_DAYS;
  protected readonly maxApprovers = MAX_APPROVERS;
  protected readonly maxPathLen = MAX_PATH_LEN;
  protected readonly form = ceremonyForm();
  protected readonly certificate = new FormControl('', { nonNullable: true, validators: [Validators.required] });
  protected readonly chain = new FormControl('', { nonNullable: true, validators: [Validators.required] });
  protected readonly pendingKeyid = new FormControl('', { nonNullable: true, validators: [Validators.required, Validators.pattern(KEYID)] });
  protected readonly importForm = new FormGroup({ certificate: this.certificate, chain: this.chain });
  protected readonly resumeForm = new FormGroup({ keyid: this.pendingKeyid });
  protected readonly session = computed(() => this.adminSessions.active());
  protected readonly review = signal<RootCeremonyBody | null>(null);
  protected readonly result = signal<RootCeremonyResultView | null>(null);
  protected readonly pending = signal<PendingKey | null>(null);
  protected readonly imported = signal<string | null>(null);
  protected readonly confirmCancel = signal(false);
  protected readonly cancelled = signal<PendingCancellationView | null>(null);
  protected readonly problem = signal<Problem | null>(null);
  protected readonly busy = signal(false);

  constructor() {
    void this.adminSessions.refresh();
  }

  protected subject(r: RootCeremonyBody): string {
    return subjectText(r.subject);
  }

  protected fingerprint(hex: string): string {
    return colonHex(hex);
  }

  protected administrators(r: RootCeremonyResultView): string {
    return r.administrators.map((a) => a.displayName).join(', ');
  }

  protected download(name: string, pem: string, type?: string): void {
    downloadText(name, joinPem([pem]), type);
  }

  protected toReview(): void {
    this.problem.set(null);
    if (this.form.invalid) {
      this.form.markAllAsTouched();
      return;
    }
    this.review.set(toCeremonyRequest(this.form));
    setTimeout(() => this.reviewTitle()?.nativeElement.focus());
  }

  protected async run(body: RootCeremonyBody): Promise<void> {
    this.busy.set(true);
    this.problem.set(null);
    try {
      const r = await firstValueFrom(this.api.ceremony(body));
      this.review.set(null);
      this.result.set(r);
      if (r.state === 'AWAITING_CERTIFICATE' && r.csr) this.pending.set({ keyid: r.keyid, version: 1, algorithm: r.algorithm, csr: r.csr, spkiSha256: r.spkiSha256, createdAt: new Date().toISOString() });
      setTimeout(() => this.resultTitle()?.nativeElement.focus());
    } catch (err) {
      this.problem.set(toProblem(err));
    } finally {
      this.busy.set(false);
    }
  }

  protected startOver(): void {
    this.result.set(null);
    this.pending.set(null);
    this.imported.set(null);
    this.cancelled.set(null);
    this.confirmCancel.set(false);
    this.problem.set(null);
    this.form.reset(ceremonyForm().getRawValue());
  }

  protected async loadPending(): Promise<void> {
    this.problem.set(null);
    this.imported.set(null);
    this.cancelled.set(null);
    this.confirmCancel.set(false);
    if (this.pendingKeyid.invalid) {
      this.pendingKeyid.markAsTouched();
      return;
    }
    this.busy.set(true);
    try {
      this.pending.set(await firstValueFrom(this.api.pending(this.pendingKeyid.value)));
      setTimeout(() => this.pendingTitle()?.nativeElement.focus());
    } catch (err) {
      this.problem.set(toProblem(err));
    } finally {
      this.busy.set(false);
    }
  }

  protected async importCertificate(keyid: string): Promise<void> {
    this.problem.set(null);
    const [certificate] = splitPemCertificates(this.certificate.value);
    const chain = splitPemCertificates(this.chain.value);
    if (!certificate) this.certificate.setErrors({ pem: true });
    if (chain.length < 1 || chain.length > 8) this.chain.setErrors({ pem: true });
    if (!certificate || this.chain.invalid) {
      this.certificate.markAsTouched();
      this.chain.markAsTouched();
      return;
    }
    this.busy.set(true);
    try {
      await firstValueFrom(this.api.importCertificate(keyid, { certificate, chain }));
      this.pending.set(null);
      this.result.set(null);
      this.certificate.reset();
      this.chain.reset();
      this.imported.set(keyid);
    } catch (err) {
      this.problem.set(toProblem(err));
    } finally {
      this.busy.set(false);
    }
  }

  protected async cancelPending(pk: PendingKey): Promise<void> {
    this.problem.set(null);
    this.busy.set(true);
    try {
      this.cancelled.set(await firstValueFrom(this.api.cancel(pk.keyid, pk.version)));
      this.pending.set(null);
      this.result.set(null);
      this.confirmCancel.set(false);
    } catch (err) {
      this.problem.set(toProblem(err));
    } finally {
      this.busy.set(false);
    }
  }
}
