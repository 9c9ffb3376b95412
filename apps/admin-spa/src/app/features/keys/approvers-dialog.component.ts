import { ChangeDetectionStrategy, Component, computed, inject } from '@angular/core';
import { toSignal } from '@angular/core/rxjs-interop';
import { FormControl, FormGroup, ReactiveFormsModule } from '@angular/forms';
import { MatButtonModule } from '@angular/material/button';
import { MAT_DIALOG_DATA, MatDialogModule, MatDialogRef } from '@angular/material/dialog';
import { MatFormFieldModule } from '@angular/material/form-field';
import { MatInputModule } from '@angular/material/input';
import { MAX_APPROVERS, wholeNumber } from './key-form';

export interface ApproversDialogData {
  keyid: string;
  requiredApprovers: number;
}

/** "Change approvers": how many approvals an operation on this key needs (0..10, as UpdateKeyRequest); closes with it. */
@Component({
  selector: 'app-approvers-dialog',
  imports: [ReactiveFormsModule, MatButtonModule, MatDialogModule, MatFormFieldModule, MatInputModule],
  changeDetection: ChangeDetectionStrategy.OnPush,
  template: `
    <h2 mat-dialog-title id="approvers-dialog-title">Change approvers of {{ data.keyid }}</h2>
    <form [formGroup]="form" (ngSubmit)="submit()" aria-labelledby="approvers-dialog-title">
      <mat-dialog-content>
        <p>Now {{ data.requiredApprovers }}. Operations created from now on need this many approvals.</p>
        <mat-form-field appearance="outline" class="full-width">
          <mat-label>Approvers required</mat-label>
          <input matInput type="number" formControlName="requiredApprovers" min="0" [max]="max" step="1" required cdkFocusInitial />
          <mat-error>A whole number from 0 to {{ max }}.</mat-error>
        </mat-form-field>
        @if (value() === 0 && data.requiredApprovers > 0) {
          <p class="warning" role="note">
            <strong>0 approvers turns {{ data.keyid }} into a development key:</strong> operations on it will be usable at once,
            nobody approves them, and its default limits become the looser development ones.
          </p>
        }
      </mat-dialog-content>
      <mat-dialog-actions align="end">
        <button mat-button type="button" mat-dialog-close>Cancel</button>
        <button mat-flat-button type="submit">Save</button>
      </mat-dialog-actions>
    </form>
  `,
})
export class ApproversDialogComponent {
  protected readonly data = inject<ApproversDialogData>(MAT_DIALOG_DATA);
  private readonly ref = inject(MatDialogRef<ApproversDialogComponent, number>);
  protected readonly max = MAX_APPROVERS;
  protected readonly approvers = new FormControl<number | null>(this.data.requiredApprovers, wholeNumber(0, MAX_APPROVERS));
  protected readonly form = new FormGroup({ requiredApprovers: this.approvers });
  private readonly typed = toSignal(this.approvers.valueChanges, { initialValue: this.approvers.value });
  protected readonly value = computed(() => {
    const v = this.typed();
    return v === null || v === undefined || String(v) === '' ? null : Number(v);
  });

  protected submit(): void {
    this.approvers.markAsTouched();
    if (this.approvers.invalid) return;
    this.ref.close(Number(this.approvers.value));
  }
}
