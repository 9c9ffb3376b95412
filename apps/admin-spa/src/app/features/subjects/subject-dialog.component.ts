import { ChangeDetectionStrategy, Component, inject } from '@angular/core';
import { FormControl, FormGroup, ReactiveFormsModule, Validators } from '@angular/forms';
import { MatButtonModule } from '@angular/material/button';
import { MatCheckboxModule } from '@angular/material/checkbox';
import { MAT_DIALOG_DATA, MatDialogModule, MatDialogRef } from '@angular/material/dialog';
import { MatFormFieldModule } from '@angular/material/form-field';
import { MatInputModule } from '@angular/material/input';
import { MatSelectModule } from '@angular/material/select';

const GUID = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;

export interface SubjectDialogData {
  mode: 'create' | 'edit';
  roles: string[];
  value: { kind: 'USER' | 'CLIENT'; tid: string; oid: string; displayName: string; username: string | null; roles: string[]; enabled: boolean };
}
export type SubjectDialogResult = SubjectDialogData['value'];

/** Registers a principal or edits a subject (display name, roles, enabled). */
@Component({
  selector: 'app-subject-dialog',
  imports: [ReactiveFormsModule, MatButtonModule, MatCheckboxModule, MatDialogModule, MatFormFieldModule, MatInputModule, MatSelectModule],
  changeDetection: ChangeDetectionStrategy.OnPush,
  template: `
    <h2 mat-dialog-title>{{ data.mode === 'create' ? 'Register a subject' : 'Edit subject' }}</h2>
    <form [formGroup]="form" (ngSubmit)="submit()">
      <mat-dialog-content class="dialog-grid">
        <mat-form-field appearance="outline">
          <mat-label>Kind</mat-label>
          <mat-select formControlName="kind">
            <mat-option value="USER">User</mat-option>
            <mat-option value="CLIENT">Application (client)</mat-option>
          </mat-select>
        </mat-form-field>
        <mat-form-field appearance="outline">
          <mat-label>Tenant id (tid)</mat-label>
          <input matInput formControlName="tid" required />
          <mat-error>A GUID is required.</mat-error>
        </mat-form-field>
        <mat-form-field appearance="outline">
          <mat-label>Object id (oid)</mat-label>
          <input matInput formControlName="oid" required />
          <mat-error>A GUID is required.</mat-error>
        </mat-form-field>
        <mat-form-field appearance="outline">
          <mat-label>Display name</mat-label>
          <input matInput formControlName="displayName" required />
          <mat-error>1 to 200 characters.</mat-error>
        </mat-form-field>
        <mat-form-field appearance="outline">
          <mat-label>Username (optional)</mat-label>
          <input matInput formControlName="username" />
        </mat-form-field>
        <mat-form-field appearance="outline">
          <mat-label>Roles</mat-label>
          <mat-select formControlName="roles" multiple>
            @for (r of data.roles; track r) {
              <mat-option [value]="r">{{ r }}</mat-option>
            }
          </mat-select>
        </mat-form-field>
        @if (data.mode === 'edit') {
          <mat-checkbox formControlName="enabled">Enabled</mat-checkbox>
        }
      </mat-dialog-content>
      <mat-dialog-actions align="end">
        <button mat-button type="button" mat-dialog-close>Cancel</button>
        <button mat-flat-button type="submit">Save</button>
      </mat-dialog-actions>
    </form>
  `,
})
export class SubjectDialogComponent {
  protected readonly data = inject<SubjectDialogData>(MAT_DIALOG_DATA);
  private readonly ref = inject(MatDialogRef<SubjectDialogComponent, SubjectDialogResult>);
  protected readonly form = new FormGroup({
    kind: new FormControl(this.data.value.kind, { nonNullable: true }),
    tid: new FormControl(this.data.value.tid, { nonNullable: true, validators: [Validators.required, Validators.pattern(GUID)] }),
    oid: new FormControl(this.data.value.oid, { nonNullable: true, validators: [Validators.required, Validators.pattern(GUID)] }),
    displayName: new FormControl(this.data.value.displayName, { nonNullable: true, validators: [Validators.required, Validators.maxLength(200)] }),
    username: new FormControl(this.data.value.username ?? '', { nonNullable: true, validators: [Validators.maxLength(256)] }),
    roles: new FormControl<string[]>(this.data.value.roles, { nonNullable: true }),
    enabled: new FormControl(this.data.value.enabled, { nonNullable: true }),
  });

  constructor() {
    if (this.data.mode === 'edit') {
      // Identity of an existing subject is fixed.
      this.form.controls.kind.disable();
      this.form.controls.tid.disable();
      this.form.controls.oid.disable();
    }
  }

  protected submit(): void {
    this.form.markAllAsTouched();
    if (this.form.invalid) return;
    const v = this.form.getRawValue();
    this.ref.close({ ...v, displayName: v.displayName.trim(), username: v.username.trim() || null });
  }
}
