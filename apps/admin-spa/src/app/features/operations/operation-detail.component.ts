import { ChangeDetectionStrategy, Component, DestroyRef, computed, inject, input, signal, effect } from '@angular/core';
import { RouterLink } from '@angular/router';
import { firstValueFrom } from 'rxjs';
import { MatButtonModule } from '@angular/material/button';
import { MatDialog } from '@angular/material/dialog';
import { MatProgressBarModule } from '@angular/material/progress-bar';
import type { OperationView } from '../../core/api-types';
import { AuthService } from '../../core/auth.service';
import { OperationsService } from '../../core/operations.service';
import { Perm } from '../../core/permissions';
import { toProblem, type Problem } from '../../core/problem';
import { ConfirmDialogComponent, type ConfirmData } from '../../shared/confirm-dialog.component';
import { ProblemMessageComponent } from '../../shared/problem-message.component';
import { RejectDialogComponent, rejectData, type RejectData } from '../approvals/reject-dialog.component';
import { ApproveDialogComponent, type DecisionData } from '../approvals/approve-dialog.component';
import { DateTimeComponent } from '../../shared/datetime.component';
import { ApprovalCountService } from '../../core/approval-count.service';
import { OperationSummaryComponent } from './operation-summary.component';

/** How often an open operation is re-read, so usage counts stay live. */
export const OPERATION_POLL_MS = 3000;
const OPEN_STATES: ReadonlySet<OperationView['state']> = new Set(['REQUESTED', 'APPROVED']);

/** `/operations/:id`: one operation, polled while it is open and this page is shown. */
@Component({
  selector: 'app-operation-detail',
  imports: [DateTimeComponent, RouterLink, MatButtonModule, MatProgressBarModule, ProblemMessageComponent, OperationSummaryComponent],
  changeDetection: ChangeDetectionStrategy.OnPush,
  template: `
    <p><a routerLink="/operations">← Operations</a></p>
    @if (operation(); as op) {
      <div class="page-header">
        <h1>{{ op.description }}</h1>
      </div>
      <p class="muted">
        Created <app-datetime [value]="op.createdAt" [relative]="true" />
        @if (polling()) {
          · <span role="status">live, refreshed every {{ pollSeconds }} s</span>
        }
      </p>
      <app-operation-summary [operation]="op" [showNext]="true" [headingLevel]="2" />
      <app-problem-message [problem]="actionProblem()" />
      <div class="actions">
        @if (canDecide()) {
          <button mat-stroked-button type="button" class="danger" (click)="reject(op)">Reject</button>
          <button mat-flat-button type="button" (click)="approve(op)">Approve</button>
        }
        @if (canCancel()) {
          <button mat-stroked-button type="button" (click)="cancel(op)">Cancel operation</button>
        }
      </div>
    } @else if (problem()) {
      <app-problem-message [problem]="problem()" />
    } @else {
      <mat-progress-bar mode="indeterminate" aria-label="Loading the operation" />
    }
  `,
})
export class OperationDetailComponent {
  /** Route parameter (component input binding). */
  readonly id = input.required<string>();
  private readonly ops = inject(OperationsService);
  private readonly auth = inject(AuthService);
  private readonly dialog = inject(MatDialog);
  private readonly waiting = inject(ApprovalCountService);
  protected readonly operation = signal<OperationView | null>(null);
  protected readonly problem = signal<Problem | null>(null);
  protected readonly actionProblem = signal<Problem | null>(null);
  protected readonly pollSeconds = OPERATION_POLL_MS / 1000;
  protected readonly polling = computed(() => {
    const op = this.operation();
    return !!op && OPEN_STATES.has(op.state);
  });
  protected readonly canDecide = computed(() => {
    const op = this.operation();
    const me = this.auth.me();
    return !!op && op.state === 'REQUESTED' && this.auth.has(Perm.OperationsApprove) && op.orderer.subjectId !== me?.subjectId;
  });
  protected readonly canCancel = computed(() => {
    const op = this.operation();
    return !!op && OPEN_STATES.has(op.state) && op.orderer.subjectId === this.auth.me()?.subjectId;
  });
  private timer: ReturnType<typeof setTimeout> | null = null;
  private destroyed = false;

  constructor() {
    inject(DestroyRef).onDestroy(() => {
      this.destroyed = true;
      this.stop();
    });
    effect(() => {
      const id = this.id();
      this.stop();
      this.operation.set(null);
      this.problem.set(null);
      void this.poll(id);
    });
  }

  private stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private async poll(id: string): Promise<void> {
    try {
      const op = await firstValueFrom(this.ops.get(id));
      if (this.destroyed || id !== this.id()) return;
      this.operation.set(op);
      this.problem.set(null);
    } catch (err) {
      if (this.destroyed || id !== this.id()) return;
      this.problem.set(toProblem(err));
      // A missing or forbidden operation will not appear by polling.
      if (!this.operation()) return;
    }
    const op = this.operation();
    if (op && OPEN_STATES.has(op.state) && !this.destroyed) {
      this.timer = setTimeout(() => void this.poll(id), OPERATION_POLL_MS);
    }
  }

  protected async approve(op: OperationView): Promise<void> {
    const ok = await firstValueFrom(
      this.dialog.open<ApproveDialogComponent, DecisionData, boolean>(ApproveDialogComponent, { data: { operation: op }, width: '36rem', maxWidth: '95vw' }).afterClosed(),
    );
    if (ok) await this.act(() => this.ops.approve(op.id));
  }

  protected async reject(op: OperationView): Promise<void> {
    const reason = await firstValueFrom(
      this.dialog.open<RejectDialogComponent, RejectData, string>(RejectDialogComponent, { data: rejectData(op), width: '32rem', maxWidth: '95vw' }).afterClosed(),
    );
    if (reason) await this.act(() => this.ops.reject(op.id, reason));
  }

  protected async cancel(op: OperationView): Promise<void> {
    const ok = await firstValueFrom(
      this.dialog
        .open<ConfirmDialogComponent, ConfirmData, boolean>(ConfirmDialogComponent, {
          data: { title: 'Cancel operation', message: `No further signature or certificate will be made under "${op.description}".`, confirm: 'Cancel operation' },
        })
        .afterClosed(),
    );
    if (ok) await this.act(() => this.ops.cancel(op.id));
  }

  private async act(call: () => ReturnType<OperationsService['approve']>): Promise<void> {
    this.actionProblem.set(null);
    try {
      const updated = await firstValueFrom(call());
      this.operation.set(updated);
      void this.waiting.refresh();
      this.stop();
      if (OPEN_STATES.has(updated.state)) this.timer = setTimeout(() => void this.poll(updated.id), OPERATION_POLL_MS);
    } catch (err) {
      this.actionProblem.set(toProblem(err));
    }
  }
}
