import { ChangeDetectionStrategy, Component, input, signal } from '@angular/core';
import { MatButtonModule } from '@angular/material/button';

/** A small "Copy" button for ids and commands; says "Copied" (politely announced) for two seconds. */
@Component({
  selector: 'app-copy-button',
  imports: [MatButtonModule],
  changeDetection: ChangeDetectionStrategy.OnPush,
  // The accessible name is the visible word plus what it copies ("Copy operation id"), so it always contains the visible text.
  template: `<button mat-button type="button" class="copy-button" (click)="copy()">{{ copied() ? 'Copied' : 'Copy' }}<span class="visually-hidden"> {{ label() }}</span></button><span class="visually-hidden" aria-live="polite">{{ copied() ? label() + ' copied' : '' }}</span>`,
})
export class CopyButtonComponent {
  readonly text = input.required<string>();
  /** What is copied, for the accessible name ("Copy operation id"). */
  readonly label = input.required<string>();
  protected readonly copied = signal(false);

  protected async copy(): Promise<void> {
    try {
      await navigator.clipboard.writeText(this.text());
    } catch {
      // No clipboard permission (an http origin, an old browser): select-and-copy through a hidden field.
      const area = document.createElement('textarea');
      area.value = this.text();
      area.setAttribute('readonly', '');
      area.className = 'visually-hidden';
      document.body.appendChild(area);
      area.select();
      document.execCommand('copy');
      area.remove();
    }
    this.copied.set(true);
    setTimeout(() => this.copied.set(false), 2000);
  }
}
