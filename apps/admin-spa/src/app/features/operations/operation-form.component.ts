import { ChangeDetectionStrategy, Component, computed, inject, signal } from '@angular/core';
import { ReactiveFormsModule } from '@angular/forms';
import { Router } from '@angular/router';
import { firstValueFrom } from 'rxjs';
import { MatAutocompleteModule } from '@angular/material/autocomplete';
import { MatButtonModule } from '@angular/material/button';
import { MatFormFieldModule } from '@angular/material/form-field';
import { MatInputModule } from '@angular/material/input';
import { KeysService } from '../../core/keys.service';
import { OperationsService } from '../../core/operations.service';
import { toProblem, type Problem } from '../../core/problem';
import { ProblemMessageComponent } from '../../shared/problem-message.component';
import { digestLines, keyRow, operationForm, toRequest } from './operation-form';
import { formatSpan, localZoneLabel } from '../../core/datetime';
import { toSignal } from '@angular/core/rxjs-interop';

/** `/operations/new`: orderers declare an operation (description, window, keys with usages, digests). */
@Component({
  selector: 'app-operation-form',
  imports: [ReactiveFormsModule, MatAutocompleteModule, MatButtonModule, MatFormFieldModule, MatInputModule, ProblemMessageComponent],
  changeDetection: ChangeDetectionStrategy.OnPush,
  template: `
    <h1>New operation</h1>
    <form [formGroup]="form" (ngSubmit)="submit()" novalidate aria-label="New operation">
      <mat-form-field appearance="outline" class="full-width">
        <mat-label>Description</mat-label>
        <textarea matInput formControlName="description" rows="2" required></textarea>
        <mat-hint>What will be signed or issued, and why (at least 8 characters).</mat-hint>
        @if (form.controls.description.hasError('required')) {
          <mat-error>A description is required.</mat-error>
        } @else if (form.controls.description.hasError('minTrimmed')) {
          <mat-error>At least 8 characters.</mat-error>
        } @else if (form.controls.description.hasError('maxlength')) {
          <mat-error>At most 1000 characters.</mat-error>
        }
      </mat-form-field>

      <fieldset class="row">
        <legend>Window <span class="muted small">(your time zone: {{ zone }})</span></legend>
        <mat-form-field appearance="outline" class="datetime-field">
          <mat-label>Valid from</mat-label>
          <input matInput type="datetime-local" formControlName="validFrom" required />
          @if (form.controls.validFrom.hasError('required')) {
            <mat-error>A start is required.</mat-error>
          }
        </mat-form-field>
        <mat-form-field appearance="outline" class="datetime-field">
          <mat-label>Valid to</mat-label>
          <input matInput type="datetime-local" formControlName="validTo" required />
          <mat-hint>{{ windowLength() }}</mat-hint>
          @if (form.controls.validTo.hasError('required')) {
            <mat-error>An end is required.</mat-error>
          }
        </mat-form-field>
      </fieldset>
      @if (form.hasError('windowOrder') && (form.controls.validTo.touched || submitted())) {
        <p class="field-error" role="alert" id="window-error">The end of the window must be after its start.</p>
      }

      <fieldset formArrayName="keys">
        <legend>Keys and usages</legend>
        @for (row of form.controls.keys.controls; track row; let i = $index) {
          <div class="row" [formGroupName]="i">
            <mat-form-field appearance="outline">
              <mat-label>Key id {{ i + 1 }}</mat-label>
              <input matInput formControlName="keyid" required [matAutocomplete]="auto" />
              <mat-autocomplete #auto="matAutocomplete">
                @for (k of keyIds(); track k) {
                  <mat-option [value]="k">{{ k }}</mat-option>
                }
              </mat-autocomplete>
              @if (row.controls.keyid.hasError('required')) {
                <mat-error>A key id is required.</mat-error>
              }
            </mat-form-field>
            <mat-form-field appearance="outline">
              <mat-label>Usages for key {{ i + 1 }}</mat-label>
              <input matInput type="number" min="1" max="1000000" step="1" formControlName="usages" required />
              @if (row.controls.usages.invalid) {
                <mat-error>A whole number from 1 to 1,000,000.</mat-error>
              }
            </mat-form-field>
            <button mat-button type="button" [disabled]="form.controls.keys.length === 1" (click)="removeKey(i)" [attr.aria-label]="'Remove key ' + (i + 1)">Remove</button>
          </div>
        }
        @if (form.controls.keys.hasError('duplicateKey')) {
          <p class="field-error" role="alert">A key appears twice.</p>
        }
        <button mat-stroked-button type="button" [disabled]="form.controls.keys.length >= 32" (click)="addKey()">Add a key</button>
      </fieldset>

      <mat-form-field appearance="outline" class="full-width">
        <mat-label>Declared digests (optional)</mat-label>
        <textarea matInput formControlName="digests" rows="4" class="mono"></textarea>
        <mat-hint>One hexadecimal digest per line; when given, only these may be signed. {{ digestCount() }} entered.</mat-hint>
        @if (form.controls.digests.hasError('badDigest')) {
          <mat-error>Not a hexadecimal digest: {{ form.controls.digests.getError('badDigest').value }}</mat-error>
        } @else if (form.controls.digests.hasError('tooManyDigests')) {
          <mat-error>At most 10,000 digests.</mat-error>
        }
      </mat-form-field>

      <app-problem-message [problem]="problem()" />
      <div class="actions">
        <button mat-flat-button type="submit" [disabled]="sending()">Create operation</button>
      </div>
    </form>
  `,
})
export class OperationFormComponent {
  private readonly ops = inject(OperationsService);
  private readonly keys = inject(KeysService);
  private readonly router = inject(Router);
  readonly form = operationForm();
  protected readonly keyIds = signal<string[]>([]);
  protected readonly sending = signal(false);
  protected readonly submitted = signal(false);
  protected readonly problem = signal<Problem | null>(null);
  protected readonly digestCount = signal(0);
  protected readonly zone = localZoneLabel();
  private readonly windowValue = toSignal(this.form.valueChanges, { initialValue: this.form.getRawValue() });
  /** The window's length, so the orderer sees "7 days" rather than computing it. */
  protected readonly windowLength = computed(() => {
    const v = this.windowValue();
    const ms = Date.parse(v.validTo ?? '') - Date.parse(v.validFrom ?? '');
    return Number.isFinite(ms) && ms > 0 ? `Window: ${formatSpan(ms)}` : '';
  });

  constructor() {
    // Suggestions only: the key id can still be typed if the list cannot be read.
    this.keys.list().subscribe({ next: (ks) => this.keyIds.set(ks.map((k) => k.keyid)), error: () => this.keyIds.set([]) });
    this.form.controls.digests.valueChanges.subscribe((v) => this.digestCount.set(digestLines(v).length));
  }

  protected addKey(): void {
    this.form.controls.keys.push(keyRow());
  }

  protected removeKey(i: number): void {
    this.form.controls.keys.removeAt(i);
  }

  async submit(): Promise<void> {
    this.submitted.set(true);
    this.form.markAllAsTouched();
    if (this.form.invalid) return;
    this.sending.set(true);
    this.problem.set(null);
    try {
      const op = await firstValueFrom(this.ops.create(toRequest(this.form)));
      await this.router.navigate(['/operations', op.id]);
    } catch (err) {
      this.problem.set(toProblem(err));
    } finally {
      this.sending.set(false);
    }
  }
}
