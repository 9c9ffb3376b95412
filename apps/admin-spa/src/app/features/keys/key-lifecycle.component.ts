import { ChangeDetectionStrategy, Component, effect, inject, input, output, signal, untracked } from '@angular/core';
import { firstValueFrom } from 'rxjs';
import { MatButtonModule } from '@angular/material/button';
import { MatSnackBar } from '@angular/material/snack-bar';
import { downloadText, joinPem } from '../../core/download';
import { KeyLifecycleService, type KeyLifecycleAction, type KeyVersionListView } from '../../core/key-lifecycle.service';
import { toProblem, type Problem } from '../../core/problem';
import { DateTimeComponent } from '../../shared/datetime.component';
import { ProblemMessageComponent } from '../../shared/problem-message.component';

const DONE: Record<KeyLifecycleAction, string> = {
  renewal: 'renewed (same key pair, new certificate)',
  rotation: 'rotated (new key pair, new version)',
  retirement: 'retired',
  destruction: 'destroyed in the HSM',
};

/**
 * The versions of one key (each certificate stays published until it expires) and, for key administrators in an
 * ACTIVE admin session, its lifecycle: renew, rotate, retire, destroy (ADR 0020). Shown in the key detail.
 */
@Component({
  selector: 'app-key-lifecycle',
  imports: [DateTimeComponent, MatButtonModule, ProblemMessageComponent],
  changeDetection: ChangeDetectionStrategy.OnPush,
  styles: `
    :host {
      display: block;
      margin-block-start: 1rem;
    }
    .days {
      width: 6rem;
    }
  `,
  template: `
    <section aria-labelledby="key-versions-title">
      <h3 id="key-versions-title">Versions</h3>
      <app-problem-message [problem]="problem()" />
      @if (list(); as l) {
        <table class="simple-table responsive">
          <caption class="visually-hidden">Versions of {{ keyid() }}</caption>
          <thead>
            <tr><th scope="col">Version</th><th scope="col">State</th><th scope="col">Valid</th><th scope="col">Public key (SHA-256)</th><th scope="col"><span class="visually-hidden">Actions</span></th></tr>
          </thead>
          <tbody>
            @for (v of l.items; track v.version) {
              <tr>
                <td data-label="Version">{{ v.version }}{{ v.current ? ' (current)' : '' }}</td>
                <td data-label="State"><span class="state" [attr.data-state]="v.state">{{ v.state }}</span>{{ v.destroyedAt ? ', destroyed' : '' }}</td>
                <td data-label="Valid"><app-datetime [value]="v.notBefore" [dateOnly]="true" /> – <app-datetime [value]="v.notAfter" [dateOnly]="true" /></td>
                <td data-label="Public key (SHA-256)"><code>{{ v.spkiSha256.slice(0, 16) }}…</code></td>
                <td data-label="Actions" class="row-actions"><button mat-button type="button" (click)="download(v.version, v.certificate)" [attr.aria-label]="'Download the certificate of version ' + v.version">Certificate</button></td>
              </tr>
            }
          </tbody>
        </table>
        @if (canEdit() && !l.destroyedAt) {
          <div class="actions" role="group" aria-label="Key lifecycle">
            @if (l.state === 'ACTIVE') {
              <label>New certificate valid for <input class="days" type="number" min="1" max="36500" [value]="days()" (input)="setDays($event)" aria-label="Validity in days" /> days</label>
              <button mat-stroked-button type="button" [disabled]="busy()" (click)="act('renewal')">Renew</button>
              <button mat-stroked-button type="button" [disabled]="busy()" (click)="act('rotation')">Rotate</button>
              <button mat-stroked-button type="button" class="danger" [disabled]="busy()" (click)="act('retirement')">Retire</button>
            } @else {
              <button mat-stroked-button type="button" class="danger" [disabled]="busy()" (click)="act('destruction')">Destroy in the HSM</button>
            }
          </div>
        }
      }
    </section>
  `,
})
export class KeyLifecycleComponent {
  readonly keyid = input.required<string>();
  /** The key's state as the page shows it: a change made elsewhere (a revocation) reloads the versions. */
  readonly keyState = input<string>('');
  /** The key's current certificate as the page shows it: a re-issued one (the renewed external chain) reloads them too. */
  readonly keyCertificate = input<string>('');
  readonly canEdit = input(false);
  /** After a change: the key's new detail (the parent shows it and reloads its list). */
  readonly changed = output<void>();
  private readonly api = inject(KeyLifecycleService);
  private readonly snack = inject(MatSnackBar);
  protected readonly list = signal<KeyVersionListView | null>(null);
  protected readonly problem = signal<Problem | null>(null);
  protected readonly busy = signal(false);
  protected readonly days = signal(365);

  constructor() {
    effect(() => {
      this.keyState();
      this.keyCertificate();
      const keyid = this.keyid();
      // The load reads the list shown: not a reason to load again.
      untracked(() => void this.load(keyid));
    });
  }

  /** Only the answer to the latest load is shown (another key can be chosen while one is on its way). */
  private loadSeq = 0;

  private async load(keyid: string): Promise<void> {
    const seq = ++this.loadSeq;
    this.problem.set(null);
    // Another key's versions and actions must not stand for this key's while they load.
    if (this.list()?.keyid !== keyid) this.list.set(null);
    try {
      const list = await firstValueFrom(this.api.versions(keyid));
      if (seq === this.loadSeq) this.list.set(list);
    } catch (err) {
      if (seq === this.loadSeq) this.problem.set(toProblem(err));
    }
  }

  protected setDays(e: Event): void {
    this.days.set(Number((e.target as HTMLInputElement).value));
  }

  protected download(version: number, pem: string): void {
    downloadText(`${this.keyid()}-v${version}.pem`, joinPem([pem]));
  }

  protected async act(action: KeyLifecycleAction): Promise<void> {
    const keyid = this.keyid();
    // Retiring and destroying cannot be undone: ask first.
    if ((action === 'retirement' || action === 'destruction') && !window.confirm(`${action === 'retirement' ? 'Retire' : 'Destroy'} key ${keyid}? This cannot be undone.`)) return;
    this.busy.set(true);
    this.problem.set(null);
    try {
      await firstValueFrom(this.api.change(keyid, action, this.days()));
      this.snack.open(`Key ${keyid} ${DONE[action]}.`, undefined, { duration: 4000 });
      await this.load(keyid);
      this.changed.emit();
    } catch (err) {
      this.problem.set(toProblem(err));
    } finally {
      this.busy.set(false);
    }
  }
}
