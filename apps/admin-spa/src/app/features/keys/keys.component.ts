import { ChangeDetectionStrategy, Component, inject, signal } from '@angular/core';
import { DatePipe } from '@angular/common';
import { firstValueFrom } from 'rxjs';
import { MatButtonModule } from '@angular/material/button';
import type { KeyDetailView, LegacyKeyView } from '../../core/api-types';
import { downloadText, joinPem } from '../../core/download';
import { KeysService } from '../../core/keys.service';
import { toProblem, type Problem } from '../../core/problem';
import { ListStateComponent } from '../../shared/list-state.component';
import { ProblemMessageComponent } from '../../shared/problem-message.component';

/** `/keys`: the keys I may see, with certificate and chain downloads (PEM). */
@Component({
  selector: 'app-keys',
  imports: [DatePipe, MatButtonModule, ListStateComponent, ProblemMessageComponent],
  changeDetection: ChangeDetectionStrategy.OnPush,
  template: `
    <div class="page-header">
      <h1>Keys</h1>
      <button mat-stroked-button type="button" (click)="load()">Refresh</button>
    </div>
    <app-problem-message [problem]="actionProblem()" />
    @if (keys().length) {
      <table class="simple-table">
        <caption class="visually-hidden">Keys</caption>
        <thead>
          <tr><th scope="col">Key id</th><th scope="col">Summary</th><th scope="col"><span class="visually-hidden">Actions</span></th></tr>
        </thead>
        <tbody>
          @for (k of keys(); track k.keyid) {
            <tr>
              <td><code>{{ k.keyid }}</code></td>
              <td>{{ k.keyinfo }}</td>
              <td class="row-actions">
                <button mat-button type="button" (click)="details(k)" [attr.aria-label]="'Details of ' + k.keyid">Details</button>
                <button mat-button type="button" (click)="downloadCertificate(k)" [attr.aria-label]="'Download the certificate of ' + k.keyid">Certificate</button>
                <button mat-button type="button" (click)="downloadChain(k.keyid)" [attr.aria-label]="'Download the chain of ' + k.keyid">Chain</button>
              </td>
            </tr>
          }
        </tbody>
      </table>
    }
    <app-list-state [loading]="loading()" [loaded]="loaded()" [problem]="problem()" [count]="keys().length" emptyText="No key is visible to you." (retry)="load()" />
    @if (detail(); as d) {
      <section class="panel" aria-labelledby="key-detail-title">
        <h2 id="key-detail-title">Key <code>{{ d.keyid }}</code></h2>
        <dl class="facts">
          <dt>Type</dt><dd>{{ d.type }}</dd>
          <dt>Algorithm</dt><dd>{{ d.algorithm }} / {{ d.hash }}</dd>
          <dt>State</dt><dd>{{ d.state }}</dd>
          <dt>Approvers required</dt><dd>{{ d.requiredApprovers }}</dd>
          <dt>Product</dt><dd>{{ d.product ?? '—' }}</dd>
          <dt>Valid</dt><dd>{{ d.notBefore | date: 'mediumDate' }} – {{ d.notAfter | date: 'mediumDate' }}</dd>
          <dt>Chain</dt><dd>{{ d.chain.length }} certificate{{ d.chain.length === 1 ? '' : 's' }}</dd>
        </dl>
      </section>
    }
  `,
})
export class KeysComponent {
  private readonly api = inject(KeysService);
  protected readonly keys = signal<LegacyKeyView[]>([]);
  protected readonly loading = signal(false);
  protected readonly loaded = signal(false);
  protected readonly problem = signal<Problem | null>(null);
  protected readonly actionProblem = signal<Problem | null>(null);
  protected readonly detail = signal<KeyDetailView | null>(null);

  constructor() {
    void this.load();
  }

  protected async load(): Promise<void> {
    this.loading.set(true);
    this.problem.set(null);
    try {
      this.keys.set(await firstValueFrom(this.api.list()));
      this.loaded.set(true);
    } catch (err) {
      this.problem.set(toProblem(err));
    } finally {
      this.loading.set(false);
    }
  }

  protected async details(k: LegacyKeyView): Promise<void> {
    this.actionProblem.set(null);
    try {
      this.detail.set(await firstValueFrom(this.api.get(k.keyid)));
    } catch (err) {
      this.actionProblem.set(toProblem(err));
    }
  }

  protected downloadCertificate(k: LegacyKeyView): void {
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
}
