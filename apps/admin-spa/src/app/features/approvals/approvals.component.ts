import { ChangeDetectionStrategy, Component, inject, signal } from '@angular/core';
import { RouterLink } from '@angular/router';
import { firstValueFrom } from 'rxjs';
import { MatButtonModule } from '@angular/material/button';
import { MatCardModule } from '@angular/material/card';
import { MatDialog } from '@angular/material/dialog';
import { MatSnackBar } from '@angular/material/snack-bar';
import type { OperationView } from '../../core/api-types';
import { CursorList } from '../../core/cursor-list';
import { OperationsService } from '../../core/operations.service';
import { problemMessage, toProblem, type Problem } from '../../core/problem';
import { ListStateComponent } from '../../shared/list-state.component';
import { ProblemMessageComponent } from '../../shared/problem-message.component';
import { OperationSummaryComponent } from '../operations/operation-summary.component';
import { ApproveDialogComponent, type DecisionData } from './approve-dialog.component';
import { RejectDialogComponent, rejectData, type RejectData } from './reject-dialog.component';
import { ApprovalCountService } from '../../core/approval-count.service';

/** `/approvals`: operations waiting for my approval, with approve and reject (reason in a dialog). */
@Component({
  selector: 'app-approvals',
  imports: [RouterLink, MatButtonModule, MatCardModule, ListStateComponent, ProblemMessageComponent, OperationSummaryComponent],
  changeDetection: ChangeDetectionStrategy.OnPush,
  template: `
    <div class="page-header">
      <h1>My approvals</h1>
      <button mat-stroked-button type="button" (click)="reload()">Refresh</button>
    </div>
    <app-problem-message [problem]="actionProblem()" />
    <div class="cards">
      @for (op of list.items(); track op.id) {
        <mat-card appearance="outlined" class="op-card" [attr.aria-labelledby]="'op-' + op.id">
          <mat-card-header>
            <mat-card-title><h2 [id]="'op-' + op.id" class="card-title">{{ op.description }}</h2></mat-card-title>
          </mat-card-header>
          <mat-card-content><app-operation-summary [operation]="op" /></mat-card-content>
          <mat-card-actions align="end" class="card-actions">
            <a mat-button [routerLink]="['/operations', op.id]" [attr.aria-label]="'Details of ' + op.description">Details</a>
            <button mat-stroked-button type="button" class="danger" [disabled]="busy() === op.id" (click)="reject(op)">Reject</button>
            <button mat-flat-button type="button" [disabled]="busy() === op.id" (click)="approve(op)">Approve</button>
          </mat-card-actions>
        </mat-card>
      }
    </div>
    <app-list-state [list]="list" emptyText="No operation is waiting for your approval." (retry)="reload()" />
  `,
})
export class ApprovalsComponent {
  private readonly ops = inject(OperationsService);
  private readonly dialog = inject(MatDialog);
  private readonly snack = inject(MatSnackBar);
  private readonly waiting = inject(ApprovalCountService);
  protected readonly list = new CursorList<OperationView>((cursor) => this.ops.list({ awaitingMe: true }, cursor));
  protected readonly busy = signal<string | null>(null);
  protected readonly actionProblem = signal<Problem | null>(null);

  constructor() {
    void this.list.reset();
  }

  protected reload(): void {
    this.actionProblem.set(null);
    void this.list.reset();
    void this.waiting.refresh();
  }

  protected async approve(op: OperationView): Promise<void> {
    const ok = await firstValueFrom(
      this.dialog.open<ApproveDialogComponent, DecisionData, boolean>(ApproveDialogComponent, { data: { operation: op }, width: '36rem', maxWidth: '95vw' }).afterClosed(),
    );
    if (!ok) return;
    await this.act(op, () => this.ops.approve(op.id), 'Approved');
  }

  protected async reject(op: OperationView): Promise<void> {
    const reason = await firstValueFrom(
      this.dialog.open<RejectDialogComponent, RejectData, string>(RejectDialogComponent, { data: rejectData(op), width: '32rem', maxWidth: '95vw' }).afterClosed(),
    );
    if (!reason) return;
    await this.act(op, () => this.ops.reject(op.id, reason), 'Rejected');
  }

  private async act(op: OperationView, call: () => ReturnType<OperationsService['approve']>, done: string): Promise<void> {
    this.busy.set(op.id);
    this.actionProblem.set(null);
    try {
      await firstValueFrom(call());
      // Once I acted, the operation no longer waits for me.
      this.list.remove((o) => o.id === op.id);
      void this.waiting.refresh();
      this.snack.open(`${done}: ${op.description}`, undefined, { duration: 4000 });
    } catch (err) {
      const p = toProblem(err);
      this.actionProblem.set(p);
      this.snack.open(problemMessage(p), 'Close', { duration: 8000 });
    } finally {
      this.busy.set(null);
    }
  }
}
