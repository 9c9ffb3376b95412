import { ChangeDetectionStrategy, Component, ElementRef, inject, input, output, signal, viewChild } from '@angular/core';
import { FormControl, FormGroup, ReactiveFormsModule } from '@angular/forms';
import { takeUntilDestroyed } from '@angular/core/rxjs-interop';
import { RouterLink } from '@angular/router';
import { firstValueFrom } from 'rxjs';
import { MatButtonModule } from '@angular/material/button';
import { MatFormFieldModule } from '@angular/material/form-field';
import { MatInputModule } from '@angular/material/input';
import type { KeyDetailView } from '../../core/api-types';
import { KeyLifecycleService, type ExternalChainBody } from '../../core/key-lifecycle.service';
import { MAX_PEM_TEXT, PEM_PROBLEMS, colonHex, readPemCertificates, type PemCertificate, type PemProblem } from '../../core/pem';
import { toProblem, type Problem } from '../../core/problem';
import { DateTimeComponent } from '../../shared/datetime.component';
import { ProblemMessageComponent } from '../../shared/problem-message.component';
import { MAX_EXTERNAL_CHAIN, chainChanges, type ChainRow } from './external-chain';

const CHANGE_TEXT: Record<ChainRow['change'], string> = { kept: 'kept', unchanged: 'unchanged', replaced: 'replaced', added: 'added', removed: 'removed' };

interface Review {
  body: ExternalChainBody;
  rows: ChainRow[];
}

/**
 * The renewed external chain of an imported ROOT (ADR 0020 addendum "the renewed external chain"; docs/operations.md
 * §7): the chain the offline CA renewed, and the ROOT certificate it re-issued for the same key pair if any, pasted or
 * read from files. Before anything is sent it shows, certificate by certificate, what changes (SHA-256 of each DER,
 * as openssl prints it: the console has no X.509 parser, the API verifies names, keys, signatures and validity and
 * answers the new validity). Runs in the ACTIVE admin session of two administrators, like the ceremony. Shown in the
 * key detail of an ACTIVE ROOT that has an external chain.
 */
@Component({
  selector: 'app-external-chain',
  imports: [ReactiveFormsModule, RouterLink, MatButtonModule, MatFormFieldModule, MatInputModule, DateTimeComponent, ProblemMessageComponent],
  changeDetection: ChangeDetectionStrategy.OnPush,
  styles: `
    :host {
      display: block;
      margin-block-start: 1rem;
    }
    mat-form-field {
      width: 100%;
    }
    .file {
      display: block;
      margin-block: 0.25rem 0.75rem;
    }
    .fingerprint {
      overflow-wrap: anywhere;
      font-size: 0.8rem;
    }
    .actions {
      display: flex;
      flex-wrap: wrap;
      gap: 0.5rem;
      margin-block: 0.75rem;
    }
  `,
  template: `
    <section aria-labelledby="external-chain-title">
      <h3 id="external-chain-title">External chain</h3>
      <p>
        {{ key().keyid }} is certified by an offline root: {{ key().chain.length - 1 }} certificate{{ key().chain.length === 2 ? '' : 's' }} above it.
        When the offline CA renews its intermediate, or re-issues this ROOT's certificate for the same key pair, install them here before the
        old ones expire: everything below the ROOT signs only while the chain above it is valid.
      </p>
      @if (!canEdit()) {
        <p class="hint" id="external-chain-hint" role="note">
          Replacing the chain needs an active administrative session that two administrators opened and authorized: open it on the
          <a routerLink="/admin-sessions">Admin sessions</a> page first.
        </p>
      }
      <app-problem-message [problem]="problem()" />
      @if (review(); as r) {
        <h4 #reviewTitle tabindex="-1">Confirm the replacement</h4>
        <p class="warning" role="note">
          <strong>Two administrators are required.</strong> The replacement runs in the active administrative session and is refused unless two different
          administrators opened and authorized it. {{ r.body.certificate ? 'The re-issued certificate becomes the ROOT\\'s next version (same key pair).' : 'The ROOT keeps its certificate.' }}
        </p>
        <table class="simple-table responsive" aria-label="What the replacement changes">
          <thead>
            <tr><th scope="col">Certificate</th><th scope="col">Now (SHA-256)</th><th scope="col">After (SHA-256)</th><th scope="col">Change</th></tr>
          </thead>
          <tbody>
            @for (row of r.rows; track $index) {
              <tr [attr.data-change]="row.change">
                <th scope="row" data-label="Certificate">{{ row.place }}</th>
                <td data-label="Now (SHA-256)"><code class="fingerprint">{{ fingerprint(row.current) }}</code></td>
                <td data-label="After (SHA-256)"><code class="fingerprint">{{ fingerprint(row.next) }}</code></td>
                <td data-label="Change">{{ changeText[row.change] }}</td>
              </tr>
            }
          </tbody>
        </table>
        <p>
          The ROOT's certificate is valid now <app-datetime [value]="key().notBefore" [dateOnly]="true" /> – <app-datetime [value]="key().notAfter" [dateOnly]="true" />.
          The Keyserver checks the new certificates' subject, issuer, key and validity before it stores anything, and answers the new validity;
          compare the fingerprints with <code>openssl x509 -noout -fingerprint -sha256</code>.
        </p>
        <div class="actions">
          <button mat-stroked-button type="button" [disabled]="busy()" (click)="back()">Back to the form</button>
          <button mat-flat-button type="button" [disabled]="busy() || !canEdit()" (click)="replace(r.body)">Replace the chain</button>
        </div>
      } @else {
        <form [formGroup]="form" (ngSubmit)="toReview()" aria-label="Replace the external chain">
          <mat-form-field appearance="outline" subscriptSizing="dynamic">
            <mat-label>New chain (PEM)</mat-label>
            <textarea matInput formControlName="chain" rows="6" spellcheck="false" autocomplete="off"></textarea>
            <mat-hint>The certificates above the ROOT, issuer first, ending with the same offline root</mat-hint>
            <mat-error>{{ pemError(chain) }}</mat-error>
          </mat-form-field>
          <label class="file">Or read it from a file: <input type="file" accept=".pem,.crt,.cer,application/x-pem-file" aria-label="Chain file" (change)="upload($event, chain)" /></label>
          <mat-form-field appearance="outline" subscriptSizing="dynamic">
            <mat-label>Re-issued ROOT certificate (PEM, optional)</mat-label>
            <textarea matInput formControlName="certificate" rows="4" spellcheck="false" autocomplete="off"></textarea>
            <mat-hint>Only when the offline CA re-issued this ROOT's certificate for the same key pair and subject</mat-hint>
            <mat-error>{{ pemError(certificate) }}</mat-error>
          </mat-form-field>
          <label class="file">Or read it from a file: <input type="file" accept=".pem,.crt,.cer,application/x-pem-file" aria-label="Re-issued certificate file" (change)="upload($event, certificate)" /></label>
          <div class="actions">
            <button mat-stroked-button type="submit" [disabled]="busy() || reading() > 0 || !canEdit()" [attr.aria-describedby]="canEdit() ? null : 'external-chain-hint'">Review the change</button>
          </div>
        </form>
      }
      @if (done(); as d) {
        <p class="ok" role="status">
          External chain of {{ d.keyid }} replaced: {{ d.chain.length - 1 }} certificate{{ d.chain.length === 2 ? '' : 's' }} above it; the ROOT's certificate is valid
          <app-datetime [value]="d.notBefore" [dateOnly]="true" /> – <app-datetime [value]="d.notAfter" [dateOnly]="true" />.
        </p>
      }
    </section>
  `,
})
export class ExternalChainComponent {
  /** The ROOT as GET /api/v1/keys/{keyid} answers it (its certificate, then the external chain). */
  readonly key = input.required<KeyDetailView>();
  readonly canEdit = input(false);
  /** After a replacement: the key's new detail (the parent shows it and reloads its versions). */
  readonly changed = output<KeyDetailView>();
  private readonly api = inject(KeyLifecycleService);
  private readonly reviewTitle = viewChild<ElementRef<HTMLElement>>('reviewTitle');
  protected readonly changeText = CHANGE_TEXT;
  protected readonly chain = new FormControl('', { nonNullable: true });
  protected readonly certificate = new FormControl('', { nonNullable: true });
  protected readonly form = new FormGroup({ chain: this.chain, certificate: this.certificate });
  protected readonly review = signal<Review | null>(null);
  protected readonly done = signal<KeyDetailView | null>(null);
  protected readonly problem = signal<Problem | null>(null);
  protected readonly busy = signal(false);
  /** Files still being read: the review waits for their text (a review before it would leave a chosen file out). */
  protected readonly reading = signal(0);

  constructor() {
    // A paste over the largest chain is not kept: the browser would lay out megabytes of text on every change (ADR 0027 addendum).
    for (const control of [this.chain, this.certificate]) {
      control.valueChanges.pipe(takeUntilDestroyed()).subscribe((text) => {
        if (text.length <= MAX_PEM_TEXT) return;
        control.setValue('', { emitEvent: false });
        this.refuse(control, 'too_large');
      });
    }
  }

  protected fingerprint(hex: string | null): string {
    return hex === null ? '—' : colonHex(hex);
  }

  protected pemError(control: FormControl<string>): string {
    const problem = control.errors?.['pem'] as PemProblem | undefined;
    return problem ? PEM_PROBLEMS[problem] : '';
  }

  /** A file's text into `control`: one over the largest chain is refused by its size, never read. */
  protected async upload(e: Event, control: FormControl<string>): Promise<void> {
    const el = e.target as HTMLInputElement;
    const file = el.files?.[0];
    el.value = '';
    if (!file) return;
    if (file.size > MAX_PEM_TEXT) {
      this.refuse(control, 'too_large');
      return;
    }
    this.reading.update((n) => n + 1);
    try {
      control.setValue(await file.text());
      control.markAsTouched();
    } catch {
      this.refuse(control, 'unreadable');
    } finally {
      this.reading.update((n) => n - 1);
    }
  }

  private refuse(control: FormControl<string>, problem: PemProblem): void {
    control.setErrors({ pem: problem });
    control.markAsTouched();
  }

  protected async toReview(): Promise<void> {
    // Enter in a field submits without the (disabled) button.
    if (this.reading() > 0) return;
    this.problem.set(null);
    this.done.set(null);
    const chain = readPemCertificates(this.chain.value, MAX_EXTERNAL_CHAIN);
    const reissued = this.certificate.value.trim() ? readPemCertificates(this.certificate.value, 1) : null;
    if (!chain.ok) this.refuse(this.chain, chain.problem);
    if (reissued && !reissued.ok) this.refuse(this.certificate, reissued.problem);
    if (!chain.ok || (reissued && !reissued.ok)) return;
    const certificate: PemCertificate | null = reissued?.ok ? reissued.certificates[0] : null;
    this.busy.set(true);
    try {
      const rows = await chainChanges(this.key().chain, { certificate, chain: chain.certificates });
      const body: ExternalChainBody = { chain: chain.certificates.map((c) => c.pem) };
      if (certificate) body.certificate = certificate.pem;
      this.review.set({ body, rows });
      setTimeout(() => this.reviewTitle()?.nativeElement.focus());
    } catch (err) {
      this.problem.set(toProblem(err));
    } finally {
      this.busy.set(false);
    }
  }

  protected back(): void {
    this.review.set(null);
    this.problem.set(null);
  }

  protected async replace(body: ExternalChainBody): Promise<void> {
    this.busy.set(true);
    this.problem.set(null);
    try {
      const changed = await firstValueFrom(this.api.replaceExternalChain(this.key().keyid, body));
      this.review.set(null);
      this.form.reset();
      this.done.set(changed);
      this.changed.emit(changed);
    } catch (err) {
      this.problem.set(toProblem(err));
    } finally {
      this.busy.set(false);
    }
  }
}
