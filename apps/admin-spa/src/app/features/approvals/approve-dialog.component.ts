import { ChangeDetectionStrategy, Component, inject } from '@angular/core';
import { MatButtonModule } from '@angular/material/button';
import { MAT_DIALOG_DATA, MatDialogModule } from '@angular/material/dialog';
import type { OperationView } from '../../core/api-types';
import { formatSpan } from '../../core/datetime';
import { DateTimeComponent } from '../../shared/datetime.component';
import { unboundProduction } from '../operations/operation-summary.component';

export interface DecisionData {
  operation: OperationView;
  /** Keys the approver's approval counts for (those he approves); the others only for information. */
  subjectId?: string;
}

/** What my approval changes: per key, how many approvals remain after mine. */
export function afterMyApproval(op: OperationView): { keyid: string; missing: number }[] {
  return op.keys.filter((k) => k.requiredApprovers > 0).map((k) => ({ keyid: k.keyid, missing: Math.max(0, k.approvalsMissing - 1) }));
}

/** The confirmation before an approval: restates exactly what is approved; closes with `true` on confirm. */
@Component({
  selector: 'app-approve-dialog',
  imports: [MatButtonModule, MatDialogModule, DateTimeComponent],
  changeDetection: ChangeDetectionStrategy.OnPush,
  template: `
    @let op = data.operation;
    <h2 mat-dialog-title>Approve this operation?</h2>
    <mat-dialog-content class="restate">
      <p><strong>{{ op.description }}</strong>, ordered by {{ op.orderer.displayName }}.</p>
      <p>
        You allow, from <app-datetime [value]="op.validFrom" /> to <app-datetime [value]="op.validTo" /> ({{ span }}):
      </p>
      <ul>
        @for (k of op.keys; track k.keyid) {
          <li>
            <strong>{{ k.usagesAllowed }}</strong> use{{ k.usagesAllowed === 1 ? '' : 's' }} of <code>{{ k.keyid }}</code>
            ({{ k.environment === 'production' ? 'production' : 'development' }} {{ k.type }} key, {{ k.algorithm }})
          </li>
        }
      </ul>
      @if (op.digests.length) {
        <p>Only the {{ op.digests.length }} declared digest{{ op.digests.length === 1 ? '' : 's' }} can be signed.</p>
      } @else if (unbound) {
        <p class="warning" role="note"><strong>No declared digests:</strong> any input may be signed with a production key.</p>
      } @else {
        <p>No declared digests: any input may be signed.</p>
      }
      <p>
        @for (a of after; track a.keyid) {
          @if (a.missing === 0) { After your approval {{ a.keyid }} needs no more approvals. } @else { After your approval {{ a.keyid }} still needs {{ a.missing }} more. }
        }
      </p>
      <p class="muted small">Your approval is recorded in the audit log with your name.</p>
    </mat-dialog-content>
    <mat-dialog-actions align="end">
      <button mat-button type="button" mat-dialog-close>Cancel</button>
      <button mat-flat-button type="button" [mat-dialog-close]="true">Approve</button>
    </mat-dialog-actions>
  `,
})
export class ApproveDialogComponent {
  protected readonly data = inject<DecisionData>(MAT_DIALOG_DATA);
  protected readonly span = formatSpan(Date.parse(this.data.operation.validTo) - Date.parse(this.data.operation.validFrom));
  protected readonly unbound = unboundProduction(this.data.operation);
  protected readonly after = afterMyApproval(this.data.operation);
}
