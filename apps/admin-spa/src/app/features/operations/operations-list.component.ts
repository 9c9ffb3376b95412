import { DateTimeComponent } from '../../shared/datetime.component';
import { ChangeDetectionStrategy, Component, inject } from '@angular/core';
import { FormControl, FormGroup, ReactiveFormsModule } from '@angular/forms';
import { RouterLink } from '@angular/router';
import { MatButtonModule } from '@angular/material/button';
import { MatCheckboxModule } from '@angular/material/checkbox';
import { MatFormFieldModule } from '@angular/material/form-field';
import { MatInputModule } from '@angular/material/input';
import { MatSelectModule } from '@angular/material/select';
import type { OperationView } from '../../core/api-types';
import { CursorList } from '../../core/cursor-list';
import { OperationsService, type OperationFilter } from '../../core/operations.service';
import { ListStateComponent } from '../../shared/list-state.component';

const STATES: OperationView['state'][] = ['REQUESTED', 'APPROVED', 'EXHAUSTED', 'EXPIRED', 'REJECTED', 'CANCELLED'];

/** `/operations`: every operation I may see, filtered by state, key and "mine", page by page. */
@Component({
  selector: 'app-operations-list',
  imports: [DateTimeComponent, ReactiveFormsModule, RouterLink, MatButtonModule, MatCheckboxModule, MatFormFieldModule, MatInputModule, MatSelectModule, ListStateComponent],
  changeDetection: ChangeDetectionStrategy.OnPush,
  template: `
    <div class="page-header"><h1>Operations</h1></div>
    <form class="filters" [formGroup]="filters" (ngSubmit)="search()" aria-label="Filter operations">
      <mat-form-field appearance="outline">
        <mat-label>State</mat-label>
        <mat-select formControlName="state">
          <mat-option value="">Any</mat-option>
          @for (s of states; track s) {
            <mat-option [value]="s">{{ s }}</mat-option>
          }
        </mat-select>
      </mat-form-field>
      <mat-form-field appearance="outline">
        <mat-label>Key id</mat-label>
        <input matInput formControlName="key" />
      </mat-form-field>
      <mat-checkbox formControlName="mine">Only mine</mat-checkbox>
      <button mat-flat-button type="submit">Search</button>
    </form>
    @if (list.items().length) {
      <table class="simple-table responsive">
        <caption class="visually-hidden">Operations</caption>
        <thead>
          <tr>
            <th scope="col">Description</th><th scope="col">State</th><th scope="col">Orderer</th><th scope="col">Keys</th><th scope="col">Window</th>
          </tr>
        </thead>
        <tbody>
          @for (op of list.items(); track op.id) {
            <tr>
              <td data-label="Description"><a [routerLink]="['/operations', op.id]">{{ op.description }}</a></td>
              <td data-label="State"><span class="state" [attr.data-state]="op.state">{{ op.state }}</span></td>
              <td data-label="Orderer">{{ op.orderer.displayName }}</td>
              <td data-label="Keys">
                @for (k of op.keys; track k.keyid) {
                  <div><code>{{ k.keyid }}</code> {{ k.usagesUsed }}/{{ k.usagesAllowed }}</div>
                }
              </td>
              <td data-label="Window"><app-datetime [value]="op.validFrom" /> – <app-datetime [value]="op.validTo" /></td>
            </tr>
          }
        </tbody>
      </table>
    }
    <app-list-state [list]="list" emptyText="No operation matches." (retry)="search()" />
  `,
})
export class OperationsListComponent {
  private readonly ops = inject(OperationsService);
  protected readonly states = STATES;
  protected readonly filters = new FormGroup({
    state: new FormControl<OperationFilter['state']>('', { nonNullable: true }),
    key: new FormControl('', { nonNullable: true }),
    mine: new FormControl(false, { nonNullable: true }),
  });
  protected readonly list = new CursorList<OperationView>((c) => this.ops.list(this.filters.getRawValue(), c));

  constructor() {
    void this.list.reset();
  }

  protected search(): void {
    void this.list.reset();
  }
}
