import { ChangeDetectionStrategy, Component, inject } from '@angular/core';
import { FormControl, FormGroup, ReactiveFormsModule, Validators } from '@angular/forms';
import { MatButtonModule } from '@angular/material/button';
import { MAT_DIALOG_DATA, MatDialogModule, MatDialogRef } from '@angular/material/dialog';
import { MatFormFieldModule } from '@angular/material/form-field';
import { MatSelectModule } from '@angular/material/select';
import { REVOCATION_REASONS, type RevocationReasonName } from '../core/api-types';

export interface RevokeDialogData {
  /** e.g. "Revoke key fw-1". */
  title: string;
  /** What is revoked and what follows; "Revocation cannot be undone." is added. */
  detail: string;
}

/** Confirms a revocation (a device certificate, a CA or FW key) and asks for its RFC 5280 reason; closes with it. */
@Component({
  selector: 'app-revoke-dialog',
  imports: [ReactiveFormsModule, MatButtonModule, MatDialogModule, MatFormFieldModule, MatSelectModule],
  changeDetection: ChangeDetectionStrategy.OnPush,
  template: `
    <h2 mat-dialog-title id="revoke-dialog-title">{{ data.title }}</h2>
    <form [formGroup]="form" (ngSubmit)="submit()" aria-labelledby="revoke-dialog-title">
      <mat-dialog-content>
        <p>{{ data.detail }} Revocation cannot be undone.</p>
        <mat-form-field appearance="outline" class="full-width">
          <mat-label>Reason</mat-label>
          <mat-select formControlName="reason" required>
            @for (r of reasons; track r) {
              <mat-option [value]="r">{{ r }}</mat-option>
            }
          </mat-select>
          <mat-error>A reason is required.</mat-error>
        </mat-form-field>
      </mat-dialog-content>
      <mat-dialog-actions align="end">
        <!-- A destructive dialog starts on Cancel, and the reason is an explicit choice. -->
        <button mat-button type="button" mat-dialog-close cdkFocusInitial>Cancel</button>
        <button mat-flat-button type="submit" class="danger">Revoke</button>
      </mat-dialog-actions>
    </form>
  `,
})
export class RevokeDialogComponent {
  protected readonly data = inject<RevokeDialogData>(MAT_DIALOG_DATA);
  private readonly ref = inject(MatDialogRef<RevokeDialogComponent, RevocationReasonName>);
  protected readonly reasons = REVOCATION_REASONS;
  protected readonly reason = new FormControl<RevocationReasonName | null>(null, [Validators.required]);
  protected readonly form = new FormGroup({ reason: this.reason });

  protected submit(): void {
    this.reason.markAsTouched();
    if (this.reason.invalid || !this.reason.value) return;
    this.ref.close(this.reason.value);
  }
}
