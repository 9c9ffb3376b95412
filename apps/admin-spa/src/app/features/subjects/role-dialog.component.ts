import { ChangeDetectionStrategy, Component, inject } from '@angular/core';
import { FormArray, FormControl, FormGroup, ReactiveFormsModule, Validators } from '@angular/forms';
import { MatButtonModule } from '@angular/material/button';
import { MAT_DIALOG_DATA, MatDialogModule, MatDialogRef } from '@angular/material/dialog';
import { MatFormFieldModule } from '@angular/material/form-field';
import { MatInputModule } from '@angular/material/input';
import { MatSelectModule } from '@angular/material/select';
import { KEY_GRANTS, NATURES, type KeyGrant as Grant, type Nature } from '@keyserver/api-contract/access';
import type { RoleView } from '../../core/api-types';

export interface RoleDialogData {
  mode: 'create' | 'edit';
  role: RoleView | null;
}
export interface RoleDialogResult {
  name: string;
  description: string;
  natures: Nature[];
  keys: { keyid: string; permissions: Grant[] }[];
}

type GrantRow = FormGroup<{ keyid: FormControl<string>; permissions: FormControl<Grant[]> }>;

/** Creates or edits a role: natures and per-key grants. */
@Component({
  selector: 'app-role-dialog',
  imports: [ReactiveFormsModule, MatButtonModule, MatDialogModule, MatFormFieldModule, MatInputModule, MatSelectModule],
  changeDetection: ChangeDetectionStrategy.OnPush,
  template: `
    <h2 mat-dialog-title>{{ data.mode === 'create' ? 'New role' : 'Edit role ' + data.role?.name }}</h2>
    <form [formGroup]="form" (ngSubmit)="submit()">
      <mat-dialog-content class="dialog-grid">
        <mat-form-field appearance="outline">
          <mat-label>Name</mat-label>
          <input matInput formControlName="name" required />
          <mat-error>1 to 64 characters: letters, digits, . _ -</mat-error>
        </mat-form-field>
        <mat-form-field appearance="outline">
          <mat-label>Description</mat-label>
          <input matInput formControlName="description" />
        </mat-form-field>
        <mat-form-field appearance="outline">
          <mat-label>Natures</mat-label>
          <mat-select formControlName="natures" multiple>
            @for (n of natures; track n) {
              <mat-option [value]="n">{{ n }}</mat-option>
            }
          </mat-select>
        </mat-form-field>
        <fieldset formArrayName="keys">
          <legend>Per-key permissions</legend>
          @for (row of form.controls.keys.controls; track row; let i = $index) {
            <div class="row" [formGroupName]="i">
              <mat-form-field appearance="outline">
                <mat-label>Key id {{ i + 1 }}</mat-label>
                <input matInput formControlName="keyid" required />
              </mat-form-field>
              <mat-form-field appearance="outline">
                <mat-label>Permissions on key {{ i + 1 }}</mat-label>
                <mat-select formControlName="permissions" multiple required>
                  @for (g of grants; track g) {
                    <mat-option [value]="g">{{ g }}</mat-option>
                  }
                </mat-select>
              </mat-form-field>
              <button mat-button type="button" (click)="form.controls.keys.removeAt(i)" [attr.aria-label]="'Remove key ' + (i + 1)">Remove</button>
            </div>
          }
          <button mat-stroked-button type="button" (click)="addKey()">Add a key</button>
        </fieldset>
      </mat-dialog-content>
      <mat-dialog-actions align="end">
        <button mat-button type="button" mat-dialog-close>Cancel</button>
        <button mat-flat-button type="submit">Save</button>
      </mat-dialog-actions>
    </form>
  `,
})
export class RoleDialogComponent {
  protected readonly data = inject<RoleDialogData>(MAT_DIALOG_DATA);
  private readonly ref = inject(MatDialogRef<RoleDialogComponent, RoleDialogResult>);
  protected readonly natures = NATURES;
  protected readonly grants = KEY_GRANTS;
  protected readonly form = new FormGroup({
    name: new FormControl(this.data.role?.name ?? '', { nonNullable: true, validators: [Validators.required, Validators.pattern(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/)] }),
    description: new FormControl(this.data.role?.description ?? '', { nonNullable: true, validators: [Validators.maxLength(500)] }),
    natures: new FormControl<Nature[]>((this.data.role?.natures ?? []) as Nature[], { nonNullable: true }),
    keys: new FormArray<GrantRow>((this.data.role?.keys ?? []).map((k) => this.row(k.keyid, k.permissions as Grant[]))),
  });

  constructor() {
    if (this.data.mode === 'edit') this.form.controls.name.disable();
  }

  private row(keyid = '', permissions: Grant[] = []): GrantRow {
    return new FormGroup({
      keyid: new FormControl(keyid, { nonNullable: true, validators: [Validators.required, Validators.maxLength(128)] }),
      permissions: new FormControl<Grant[]>(permissions, { nonNullable: true, validators: [Validators.required] }),
    });
  }

  protected addKey(): void {
    this.form.controls.keys.push(this.row());
  }

  protected submit(): void {
    this.form.markAllAsTouched();
    if (this.form.invalid) return;
    const v = this.form.getRawValue();
    this.ref.close({ name: v.name, description: v.description.trim(), natures: v.natures, keys: v.keys.map((k) => ({ keyid: k.keyid.trim(), permissions: k.permissions })) });
  }
}
