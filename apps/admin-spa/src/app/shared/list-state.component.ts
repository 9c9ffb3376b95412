import { ChangeDetectionStrategy, Component, input, output } from '@angular/core';
import { MatButtonModule } from '@angular/material/button';
import { MatProgressBarModule } from '@angular/material/progress-bar';
import type { Problem } from '../core/problem';
import { ProblemMessageComponent } from './problem-message.component';

/** Loading, error, empty and "load more" around a list, the same on every screen. */
@Component({
  selector: 'app-list-state',
  imports: [MatButtonModule, MatProgressBarModule, ProblemMessageComponent],
  changeDetection: ChangeDetectionStrategy.OnPush,
  template: `
    @if (loading()) {
      <mat-progress-bar mode="indeterminate" aria-label="Loading" />
    }
    <app-problem-message [problem]="problem()" />
    @if (problem()) {
      <button mat-stroked-button type="button" (click)="retry.emit()">Try again</button>
    }
    @if (loaded() && count() === 0 && !problem()) {
      <p class="empty" role="status">{{ emptyText() }}</p>
    }
    @if (hasMore()) {
      <div class="load-more">
        <button mat-stroked-button type="button" [disabled]="loading()" (click)="more.emit()">Load more</button>
        <span class="muted">{{ count() }} shown</span>
      </div>
    } @else if (count() > 0) {
      <p class="muted">{{ count() }} shown, that is all.</p>
    }
  `,
})
export class ListStateComponent {
  readonly loading = input(false);
  readonly loaded = input(false);
  readonly problem = input<Problem | null>(null);
  readonly count = input(0);
  readonly hasMore = input(false);
  readonly emptyText = input('Nothing to show.');
  readonly retry = output<void>();
  readonly more = output<void>();
}
