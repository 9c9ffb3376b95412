import { ChangeDetectionStrategy, Component, computed, inject } from '@angular/core';
import { toSignal } from '@angular/core/rxjs-interop';
import { ReactiveFormsModule } from '@angular/forms';
import { MatButtonModule } from '@angular/material/button';
import { MatDialogModule, MatDialogRef } from '@angular/material/dialog';
import { MatFormFieldModule } from '@angular/material/form-field';
import { MatInputModule } from '@angular/material/input';
import { MatSelectModule } from '@angular/material/select';
import { CREATABLE_KEY_TYPES, HASH_ALGORITHMS, KEY_ALGORITHMS, type CreateKeyBody } from '../../core/api-types';
import { MAX_APPROVERS, MAX_VALIDITY_DAYS, keyForm, toCreateRequest } from './key-form';

const TYPE_LABEL: Record<CreateKeyBody['type'], string> = { FW: 'FW: firmware signing', CA: 'CA: device certificates', TSA: 'TSA: RFC 3161 timestamps' };

/** "New key": a CA or FW key generated in the HSM and certified by the ROOT; closes with the request body. */
@Component({
  selector: 'app-key-dialog',
  imports: [ReactiveFormsModule, MatButtonModule, MatDialogModule, MatFormFieldModule, MatInputModule, MatSelectModule],
  changeDetection: ChangeDetectionStrategy.OnPush,
  // Two columns; names and the product span both.
  styles: `
    .key-grid {
      display: grid;
      grid-template-columns: repeat(2, minmax(0, 1fr));
      align-items: start;
      gap: 0.25rem 1rem;
    }
    .key-grid mat-form-field {
      width: 100%;
    }
    .key-grid .wide {
      grid-column: 1 / -1;
    }
  `,
  template: `
    <h2 mat-dialog-title id="key-dialog-title">New key</h2>
    <form [formGroup]="form" (ngSubmit)="submit()" aria-labelledby="key-dialog-title">
      <mat-dialog-content class="key-grid">
        <mat-form-field appearance="outline" subscriptSizing="dynamic">
          <mat-label>Key id</mat-label>
          <input matInput formControlName="keyid" required autocomplete="off" spellcheck="false" cdkFocusInitial />
          <mat-hint>3 to 64 of a-z 0-9 . _ -</mat-hint>
          @if (c.keyid.hasError('required')) {
            <mat-error>A key id is required.</mat-error>
          } @else {
            <mat-error>3 to 64 lower-case letters, digits, . _ -, starting with a letter or digit.</mat-error>
          }
        </mat-form-field>
        <mat-form-field appearance="outline">
          <mat-label>Type</mat-label>
          <mat-select formControlName="type" required>
            @for (t of types; track t) {
              <mat-option [value]="t">{{ typeLabel[t] }}</mat-option>
            }
          </mat-select>
        </mat-form-field>
        <mat-form-field appearance="outline">
          <mat-label>Algorithm</mat-label>
          <mat-select formControlName="algorithm" required>
            @for (a of algorithms; track a) {
              <mat-option [value]="a">{{ a }}</mat-option>
            }
          </mat-select>
        </mat-form-field>
        <mat-form-field appearance="outline">
          <mat-label>Hash (optional)</mat-label>
          <mat-select formControlName="hash">
            <mat-option value="">Algorithm's default</mat-option>
            @for (h of hashes; track h) {
              <mat-option [value]="h">{{ h }}</mat-option>
            }
          </mat-select>
        </mat-form-field>
        <mat-form-field appearance="outline" subscriptSizing="dynamic">
          <mat-label>Approvers required</mat-label>
          <input matInput type="number" formControlName="requiredApprovers" min="0" [max]="maxApprovers" step="1" required />
          <mat-error>A whole number from 0 to {{ maxApprovers }}.</mat-error>
        </mat-form-field>
        @if (approvers() === 0) {
          <p class="warning wide" role="note" id="zero-approvers-note">
            <strong>0 approvers:</strong> a development key. Every operation on it is usable at once, nobody approves it.
            A production key needs at least 1 (2 for four eyes).
          </p>
        }
        <mat-form-field appearance="outline" subscriptSizing="dynamic">
          <mat-label>Validity (days)</mat-label>
          <input matInput type="number" formControlName="validityDays" min="1" [max]="maxValidity" step="1" required />
          <mat-hint>Ends before the ROOT does.</mat-hint>
          <mat-error>A whole number from 1 to {{ maxValidity }}.</mat-error>
        </mat-form-field>
        @if (type() === 'FW') {
          <mat-form-field appearance="outline" class="wide">
            <mat-label>Product (optional)</mat-label>
            <input matInput formControlName="product" autocomplete="off" />
            <mat-error>At most 128 characters.</mat-error>
          </mat-form-field>
        }
        <mat-form-field appearance="outline" class="wide">
          <mat-label>Common name</mat-label>
          <input matInput formControlName="commonName" required autocomplete="off" />
          @if (c.commonName.hasError('required')) {
            <mat-error>A common name is required.</mat-error>
          } @else {
            <mat-error>At most 64 characters, one script, no hidden, full-width or styled letters.</mat-error>
          }
        </mat-form-field>
        <mat-form-field appearance="outline" subscriptSizing="dynamic">
          <mat-label>Organization (optional)</mat-label>
          <input matInput formControlName="organization" autocomplete="off" />
          <mat-error>At most 64 characters, one script, no hidden, full-width or styled letters.</mat-error>
        </mat-form-field>
        <mat-form-field appearance="outline" subscriptSizing="dynamic">
          <mat-label>Country (optional)</mat-label>
          <input matInput formControlName="country" autocomplete="off" maxlength="2" />
          <mat-hint>Two letters, e.g. DK</mat-hint>
          <mat-error>Two letters (ISO 3166), e.g. DK.</mat-error>
        </mat-form-field>
      </mat-dialog-content>
      <mat-dialog-actions align="end">
        <button mat-button type="button" mat-dialog-close>Cancel</button>
        <button mat-flat-button type="submit">Create key</button>
      </mat-dialog-actions>
    </form>
  `,
})
export class KeyDialogComponent {
  private readonly ref = inject(MatDialogRef<KeyDialogComponent, CreateKeyBody>);
  protected readonly types = CREATABLE_KEY_TYPES;
  protected readonly typeLabel = TYPE_LABEL;
  protected readonly algorithms = KEY_ALGORITHMS;
  protected readonly hashes = HASH_ALGORITHMS;
  protected readonly maxApprovers = MAX_APPROVERS;
  protected readonly maxValidity = MAX_VALIDITY_DAYS;
  protected readonly form = keyForm();
  protected readonly c = this.form.controls;
  protected readonly type = toSignal(this.c.type.valueChanges, { initialValue: this.c.type.value });
  private readonly approversValue = toSignal(this.c.requiredApprovers.valueChanges, { initialValue: this.c.requiredApprovers.value });
  /** The number typed, or null while the field is not a number. */
  protected readonly approvers = computed(() => {
    const v = this.approversValue();
    return v === null || v === undefined || String(v) === '' ? null : Number(v);
  });

  protected submit(): void {
    this.form.markAllAsTouched();
    if (this.form.invalid) return;
    this.ref.close(toCreateRequest(this.form));
  }
}
