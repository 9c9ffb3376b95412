import { ChangeDetectionStrategy, Component, computed, input, output } from '@angular/core';
import { MatButtonModule } from '@angular/material/button';
import { MatProgressBarModule } from '@angular/material/progress-bar';
import type { CursorList } from '../core/cursor-list';
import type { Problem } from '../core/problem';
import { ProblemMessageComponent } from './problem-message.component';

/**
 * Loading, error, empty and "load more" around a list, the same on every screen. A cursor-paginated screen passes
 * its `list` and the state and paging come from it; a screen that loads everything at once passes `loading`,
 * `loaded`, `problem` and `count`.
 */
@Component({
  selector: 'app-list-state',
  imports: [MatButtonModule, MatProgressBarModule, ProblemMessageComponent],
  changeDetection: ChangeDetectionStrategy.OnPush,
  template: `
    @if (isLoading()) {
      <mat-progress-bar mode="indeterminate" aria-label="Loading" />
    }
    <app-problem-message [problem]="shownProblem()" />
    @if (shownProblem()) {
      <button mat-stroked-button type="button" (click)="retry.emit()">Try again</button>
    }
    @if (isLoaded() && shownCount() === 0 && !shownProblem()) {
      <p class="empty" role="status">{{ emptyText() }}</p>
    }
    @if (canLoadMore()) {
      <div class="load-more">
        <button mat-stroked-button type="button" [disabled]="isLoading()" (click)="loadMore()">Load more</button>
        <span class="muted">{{ shownCount() }} shown</span>
      </div>
    } @else if (shownCount() > 0) {
      <p class="muted">{{ shownCount() }} shown, that is all.</p>
    }
  `,
})
export class ListStateComponent {
  readonly list = input<CursorList<unknown> | null>(null);
  readonly loading = input(false);
  readonly loaded = input(false);
  readonly problem = input<Problem | null>(null);
  readonly count = input(0);
  readonly emptyText = input('Nothing to show.');
  readonly retry = output<void>();

  protected readonly isLoading = computed(() => this.list()?.loading() ?? this.loading());
  protected readonly isLoaded = computed(() => this.list()?.loaded() ?? this.loaded());
  protected readonly shownProblem = computed(() => (this.list() ? this.list()?.problem() : this.problem()) ?? null);
  protected readonly shownCount = computed(() => this.list()?.items().length ?? this.count());
  protected readonly canLoadMore = computed(() => !!this.list()?.nextCursor());

  protected loadMore(): void {
    void this.list()?.loadMore();
  }
}
