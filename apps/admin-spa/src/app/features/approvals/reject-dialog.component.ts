import { ChangeDetectionStrategy, Component, inject } from '@angular/core';
import { FormControl, FormGroup, ReactiveFormsModule, Validators } from '@angular/forms';
import { MatButtonModule } from '@angular/material/button';
import { MAT_DIALOG_DATA, MatDialogModule, MatDialogRef } from '@angular/material/dialog';
import { MatFormFieldModule } from '@angular/material/form-field';
import { MatInputModule } from '@angular/material/input';

export interface RejectData {
  description: string;
  orderer?: string;
  /** The keys and usages, restated ("2 uses of demo-fw-prod"). */
  keys?: string;
}

/** The reject dialog's data for an operation: what it restates. */
export function rejectData(op: { description: string; orderer: { displayName: string }; keys: { keyid: string; usagesAllowed: number }[] }): RejectData {
  return { description: op.description, orderer: op.orderer.displayName, keys: op.keys.map((k) => `${k.usagesAllowed} use${k.usagesAllowed === 1 ? '' : 's'} of ${k.keyid}`).join(', ') };
}

/** Asks for the reason of a rejection (3..1000 characters, as the API requires); closes with it. */
@Component({
  selector: 'app-reject-dialog',
  imports: [ReactiveFormsModule, MatButtonModule, MatDialogModule, MatFormFieldModule, MatInputModule],
  changeDetection: ChangeDetectionStrategy.OnPush,
  template: `
    <h2 mat-dialog-title>Reject this operation?</h2>
    <form [formGroup]="form" (ngSubmit)="submit()">
      <mat-dialog-content>
        <p><strong>{{ data.description }}</strong>@if (data.orderer) {, ordered by {{ data.orderer }}}.</p>
        @if (data.keys) {
          <p>Rejecting ends it for good: {{ data.keys }} will not be used under it, whatever the other approvers decide.</p>
        }
        <mat-form-field appearance="outline" class="full-width">
          <mat-label>Reason</mat-label>
          <textarea matInput formControlName="reason" rows="3" required cdkFocusInitial></textarea>
          <mat-hint>Shown to the orderer and kept in the audit log.</mat-hint>
          @if (reason.hasError('required')) {
            <mat-error>A reason is required.</mat-error>
          } @else if (reason.hasError('minlength')) {
            <mat-error>At least 3 characters.</mat-error>
          } @else if (reason.hasError('maxlength')) {
            <mat-error>At most 1000 characters.</mat-error>
          }
        </mat-form-field>
      </mat-dialog-content>
      <mat-dialog-actions align="end">
        <button mat-button type="button" mat-dialog-close>Cancel</button>
        <button mat-flat-button type="submit" class="danger">Reject</button>
      </mat-dialog-actions>
    </form>
  `,
})
export class RejectDialogComponent {
  protected readonly data = inject<RejectData>(MAT_DIALOG_DATA);
  private readonly ref = inject(MatDialogRef<RejectDialogComponent, string>);
  protected readonly reason = new FormControl('', { nonNullable: true, validators: [Validators.required, Validators.minLength(3), Validators.maxLength(1000)] });
  protected readonly form = new FormGroup({ reason: this.reason });

  protected submit(): void {
    const v = this.reason.value.trim();
    this.reason.setValue(v);
    this.reason.markAsTouched();
    if (this.reason.invalid) return;
    this.ref.close(v);
  }
}
