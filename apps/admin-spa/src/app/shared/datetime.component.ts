import { ChangeDetectionStrategy, Component, computed, input } from '@angular/core';
import { formatDate, formatDateTime, formatRelative, isoInstant } from '../core/datetime';

/**
 * One instant as the console shows every instant (core/datetime.ts): local, zone named, four-digit year;
 * the ISO 8601 instant on hover and in the clipboard when the text is copied; optionally relative.
 */
@Component({
  selector: 'app-datetime',
  changeDetection: ChangeDetectionStrategy.OnPush,
  template: `@if (iso()) {<time [attr.datetime]="iso()" [title]="iso()" (copy)="copyIso($event)">{{ text() }}</time>@if (relative()) {<span class="muted rel"> ({{ rel() }})</span>}} @else {<span class="muted">{{ empty() }}</span>}`,
  styles: `:host { white-space: normal; } time { white-space: nowrap; }`,
})
export class DateTimeComponent {
  readonly value = input<string | Date | null | undefined>(null);
  readonly dateOnly = input(false);
  readonly relative = input(false);
  readonly empty = input('—');
  protected readonly iso = computed(() => isoInstant(this.value()));
  protected readonly text = computed(() => (this.dateOnly() ? formatDate(this.value()) : formatDateTime(this.value())));
  protected readonly rel = computed(() => formatRelative(this.value()));

  /** Copying the shown date puts the unambiguous ISO 8601 instant in the clipboard. */
  protected copyIso(e: ClipboardEvent): void {
    if (!e.clipboardData) return;
    e.clipboardData.setData('text/plain', this.iso());
    e.preventDefault();
  }
}
