import { ChangeDetectionStrategy, Component, inject } from '@angular/core';
import { FormControl, FormGroup, ReactiveFormsModule, Validators } from '@angular/forms';
import { MatButtonModule } from '@angular/material/button';
import { MAT_DIALOG_DATA, MatDialogModule, MatDialogRef } from '@angular/material/dialog';
import { MatFormFieldModule } from '@angular/material/form-field';
import { MatSelectModule } from '@angular/material/select';
import { REVOCATION_REASONS, type RevocationReasonName } from '../../core/api-types';

/** Asks for the RFC 5280 reason of a revocation; closes with it. */
@Component({
  selector: 'app-revoke-dialog',
  imports: [ReactiveFormsModule, MatButtonModule, MatDialogModule, MatFormFieldModule, MatSelectModule],
  changeDetection: ChangeDetectionStrategy.OnPush,
  template: `
    <h2 mat-dialog-title>Revoke certificate</h2>
    <form [formGroup]="form" (ngSubmit)="submit()">
      <mat-dialog-content>
        <p>Serial <code>{{ data.serial }}</code>, {{ data.subject }}. Revocation cannot be undone.</p>
        <mat-form-field appearance="outline" class="full-width">
          <mat-label>Reason</mat-label>
          <mat-select formControlName="reason" required>
            @for (r of reasons; track r) {
              <mat-option [value]="r">{{ r }}</mat-option>
            }
          </mat-select>
        </mat-form-field>
      </mat-dialog-content>
      <mat-dialog-actions align="end">
        <button mat-button type="button" mat-dialog-close>Cancel</button>
        <button mat-flat-button type="submit" class="danger">Revoke</button>
      </mat-dialog-actions>
    </form>
  `,
})
export class RevokeDialogComponent {
  protected readonly data = inject<{ serial: string; subject: string }>(MAT_DIALOG_DATA);
  private readonly ref = inject(MatDialogRef<RevokeDialogComponent, RevocationReasonName>);
  protected readonly reasons = REVOCATION_REASONS;
  protected readonly reason = new FormControl<RevocationReasonName>('unspecified', { nonNullable: true, validators: [Validators.required] });
  protected readonly form = new FormGroup({ reason: this.reason });

  protected submit(): void {
    if (this.reason.valid) this.ref.close(this.reason.value);
  }
}
