import { ChangeDetectionStrategy, Component, inject } from '@angular/core';
import { FormControl, FormGroup, ReactiveFormsModule, Validators } from '@angular/forms';
import { MatButtonModule } from '@angular/material/button';
import { MAT_DIALOG_DATA, MatDialogModule, MatDialogRef } from '@angular/material/dialog';
import { MatFormFieldModule } from '@angular/material/form-field';
import { MatSelectModule } from '@angular/material/select';
import { KEY_REVOCATION_REASONS, type KeyRevocationReasonName } from '../../core/api-types';

/** Confirms the revocation of a CA or FW key and asks for its RFC 5280 reason; closes with the reason. */
@Component({
  selector: 'app-key-revoke-dialog',
  imports: [ReactiveFormsModule, MatButtonModule, MatDialogModule, MatFormFieldModule, MatSelectModule],
  changeDetection: ChangeDetectionStrategy.OnPush,
  template: `
    <h2 mat-dialog-title id="key-revoke-title">Revoke key {{ data.keyid }}</h2>
    <form [formGroup]="form" (ngSubmit)="submit()" aria-labelledby="key-revoke-title">
      <mat-dialog-content>
        <p>
          The key will no longer sign or issue, and its certificate goes on the ROOT's revocation list.
          Revocation cannot be undone.
        </p>
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
        <button mat-button type="button" mat-dialog-close cdkFocusInitial>Cancel</button>
        <button mat-flat-button type="submit" class="danger">Revoke</button>
      </mat-dialog-actions>
    </form>
  `,
})
export class KeyRevokeDialogComponent {
  protected readonly data = inject<{ keyid: string }>(MAT_DIALOG_DATA);
  private readonly ref = inject(MatDialogRef<KeyRevokeDialogComponent, KeyRevocationReasonName>);
  protected readonly reasons = KEY_REVOCATION_REASONS;
  protected readonly reason = new FormControl<KeyRevocationReasonName | null>(null, [Validators.required]);
  protected readonly form = new FormGroup({ reason: this.reason });

  protected submit(): void {
    this.reason.markAsTouched();
    if (this.reason.invalid || !this.reason.value) return;
    this.ref.close(this.reason.value);
  }
}
