import { CopyButtonComponent } from '../../shared/copy-button.component';
import { DateTimeComponent } from '../../shared/datetime.component';
import { ChangeDetectionStrategy, Component, inject, signal } from '@angular/core';
import { FormControl, FormGroup, ReactiveFormsModule, Validators } from '@angular/forms';
import { firstValueFrom } from 'rxjs';
import { MatButtonModule } from '@angular/material/button';
import { MatDialog } from '@angular/material/dialog';
import { MatFormFieldModule } from '@angular/material/form-field';
import { MatInputModule } from '@angular/material/input';
import { MatSnackBar } from '@angular/material/snack-bar';
import type { CertificateView, RevocationReasonName } from '../../core/api-types';
import { CertificatesService } from '../../core/certificates.service';
import { CursorList } from '../../core/cursor-list';
import { downloadText, joinPem } from '../../core/download';
import { toProblem, type Problem } from '../../core/problem';
import { ListStateComponent } from '../../shared/list-state.component';
import { ProblemMessageComponent } from '../../shared/problem-message.component';
import { RevokeDialogComponent, type RevokeDialogData } from '../../shared/revoke-dialog.component';

/** `/certificates`: device certificates, searched by serial, subject or issuer; download and revoke. */
@Component({
  selector: 'app-certificates',
  imports: [DateTimeComponent, CopyButtonComponent, ReactiveFormsModule, MatButtonModule, MatFormFieldModule, MatInputModule, ListStateComponent, ProblemMessageComponent],
  changeDetection: ChangeDetectionStrategy.OnPush,
  template: `
    <div class="page-header"><h1>Device certificates</h1></div>
    <form class="filters" [formGroup]="filters" (ngSubmit)="search()" aria-label="Search certificates">
      <mat-form-field appearance="outline">
        <mat-label>Serial (hex)</mat-label>
        <input matInput formControlName="serial" />
        @if (filters.controls.serial.invalid) {
          <mat-error>Hexadecimal only.</mat-error>
        }
      </mat-form-field>
      <mat-form-field appearance="outline">
        <mat-label>Subject contains</mat-label>
        <input matInput formControlName="subject" />
      </mat-form-field>
      <mat-form-field appearance="outline">
        <mat-label>Issuer key id</mat-label>
        <input matInput formControlName="issuer" />
      </mat-form-field>
      <button mat-flat-button type="submit">Search</button>
    </form>
    <app-problem-message [problem]="actionProblem()" />
    @if (list.items().length) {
      <table class="simple-table responsive">
        <caption class="visually-hidden">Device certificates</caption>
        <thead>
          <tr>
            <th scope="col">Serial</th><th scope="col">Subject</th><th scope="col">Issuer</th><th scope="col">Valid to</th><th scope="col">Status</th>
            <th scope="col"><span class="visually-hidden">Actions</span></th>
          </tr>
        </thead>
        <tbody>
          @for (c of list.items(); track c.id) {
            <tr>
              <td data-label="Serial" class="nowrap"><code class="serial" [title]="c.serial">{{ c.serial }}</code><app-copy-button [text]="c.serial" [label]="'serial ' + c.serial" /></td>
              <td data-label="Subject">{{ c.subject }}</td>
              <td data-label="Issuer" class="nowrap"><code>{{ c.issuer }}</code></td>
              <td data-label="Valid to"><app-datetime [value]="c.notAfter" [dateOnly]="true" /></td>
              <td data-label="Status">
                @if (c.revokedAt) {
                  <span class="state" data-state="REVOKED">Revoked <app-datetime [value]="c.revokedAt" /> ({{ c.revocationReason }})</span>
                } @else {
                  Valid
                }
              </td>
              <td data-label="Actions" class="row-actions">
                <button mat-button type="button" (click)="download(c)" [attr.aria-label]="'Download certificate ' + c.serial">Download</button>
                @if (!c.revokedAt) {
                  <button mat-button type="button" class="danger" (click)="revoke(c)" [attr.aria-label]="'Revoke certificate ' + c.serial">Revoke</button>
                }
              </td>
            </tr>
          }
        </tbody>
      </table>
    }
    <app-list-state [list]="list" emptyText="No certificate matches." (retry)="search()" />
  `,
})
export class CertificatesComponent {
  private readonly api = inject(CertificatesService);
  private readonly dialog = inject(MatDialog);
  private readonly snack = inject(MatSnackBar);
  protected readonly filters = new FormGroup({
    serial: new FormControl('', { nonNullable: true, validators: [Validators.pattern(/^\s*(?:0x)?[0-9a-fA-F]{1,40}\s*$/)] }),
    subject: new FormControl('', { nonNullable: true, validators: [Validators.maxLength(256)] }),
    issuer: new FormControl('', { nonNullable: true, validators: [Validators.maxLength(128)] }),
  });
  protected readonly list = new CursorList<CertificateView>((c) => this.api.search(this.filters.getRawValue(), c));
  protected readonly actionProblem = signal<Problem | null>(null);

  constructor() {
    void this.list.reset();
  }

  protected search(): void {
    if (this.filters.invalid) return;
    void this.list.reset();
  }

  protected download(c: CertificateView): void {
    downloadText(`${c.serial}.pem`, joinPem([c.certificate]));
  }

  protected async revoke(c: CertificateView): Promise<void> {
    const reason = await firstValueFrom(
      this.dialog
        .open<RevokeDialogComponent, RevokeDialogData, RevocationReasonName>(RevokeDialogComponent, {
          data: { title: `Revoke certificate ${c.serial}`, detail: `${c.subject}: the certificate goes on its issuer's revocation list.` },
          width: '32rem',
        })
        .afterClosed(),
    );
    if (!reason) return;
    this.actionProblem.set(null);
    try {
      const updated = await firstValueFrom(this.api.revoke(c.id, reason));
      this.list.replace((x) => x.id === c.id, updated);
      this.snack.open(`Certificate ${c.serial} revoked`, undefined, { duration: 4000 });
    } catch (err) {
      this.actionProblem.set(toProblem(err));
    }
  }
}
