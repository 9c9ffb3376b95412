import { visibleText } from '@keyserver/api-contract/visible-text';

/** Files smaller than this are done before a bar would be worth drawing. */
export const PROGRESS_MIN_BYTES = 8 * 1024 * 1024;

const MIB = 1024 * 1024;

function mib(bytes: number): string {
  return (bytes / MIB).toFixed(1);
}

function clock(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const mm = h > 0 ? String(m).padStart(2, '0') : String(m);
  return `${h > 0 ? `${h}:` : ''}${mm}:${String(s % 60).padStart(2, '0')}`;
}

/**
 * One line of the progress bar, plain ASCII so a CI log that captures it stays readable:
 * `hashing fw.bin [#######-----------------]  30%  30.0/100.0 MiB  10.0 MiB/s  ETA 0:07`.
 */
export function renderProgress(label: string, done: number, total: number, elapsedMs: number, width = 24): string {
  const fraction = total > 0 ? Math.min(1, Math.max(0, done / total)) : 1;
  const filled = Math.round(fraction * width);
  const pct = `${Math.floor(fraction * 100)}%`.padStart(4);
  const rate = elapsedMs > 0 ? done / (elapsedMs / 1000) : 0;
  // The label holds a file name, which anyone who made the file chose: hidden and control characters named (ADR 0047).
  let line = `${visibleText(label)} [${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${pct}  ${mib(done)}/${mib(total)} MiB`;
  if (rate > 0) line += `  ${mib(rate)} MiB/s`;
  if (rate > 0 && done < total) line += `  ETA ${clock((total - done) / rate)}`;
  return line;
}

/** Whether to draw a bar: an interactive terminal on stderr, no --json, no --no-progress, and a large file. */
export function wantsProgress(o: { isTTY: boolean | undefined; json: boolean; noProgress: boolean; bytes: number }): boolean {
  return Boolean(o.isTTY) && !o.json && !o.noProgress && o.bytes >= PROGRESS_MIN_BYTES;
}

/** Redraws one line in place (carriage return), at most every `intervalMs`, and ends it with a newline. */
export class ProgressBar {
  private done = 0;
  private lastDraw = -Infinity;
  private lastWidth = 0;
  private readonly started: number;

  constructor(
    private readonly label: string,
    private readonly total: number,
    private readonly out: { write(s: string): unknown },
    private readonly now: () => number = Date.now,
    private readonly intervalMs = 100,
  ) {
    this.started = now();
  }

  tick(bytes: number): void {
    this.done += bytes;
    const t = this.now();
    if (t - this.lastDraw >= this.intervalMs) this.draw(t);
  }

  finish(): void {
    this.draw(this.now());
    this.out.write('\n');
  }

  private draw(t: number): void {
    this.lastDraw = t;
    const line = renderProgress(this.label, this.done, this.total, t - this.started);
    // Pad over the remains of a longer previous line (the ETA disappears at the end).
    this.out.write(`\r${line}${' '.repeat(Math.max(0, this.lastWidth - line.length))}`);
    this.lastWidth = line.length;
  }
}
