import { PROGRESS_MIN_BYTES, ProgressBar, renderProgress, wantsProgress } from './progress';

const MIB = 1024 * 1024;

describe(renderProgress.name, () => {
  it.each([
    ['ok start', 0, 100 * MIB, 0, 'hashing fw.bin [------------------------]   0%  0.0/100.0 MiB'],
    ['ok part way, with rate and time left', 30 * MIB, 100 * MIB, 3000, 'hashing fw.bin [#######-----------------]  30%  30.0/100.0 MiB  10.0 MiB/s  ETA 0:07'],
    ['ok done, no time left shown', 100 * MIB, 100 * MIB, 4000, 'hashing fw.bin [########################] 100%  100.0/100.0 MiB  25.0 MiB/s'],
    ['ok more than counted is capped at 100%', 120 * MIB, 100 * MIB, 1000, 'hashing fw.bin [########################] 100%  120.0/100.0 MiB  120.0 MiB/s'],
    ['ok hours in the time left', 1 * MIB, 4000 * MIB, 1000, 'hashing fw.bin [------------------------]   0%  1.0/4000.0 MiB  1.0 MiB/s  ETA 1:06:39'],
    ['ok an empty file is complete', 0, 0, 10, 'hashing fw.bin [########################] 100%  0.0/0.0 MiB'],
  ])('%s', (_name, done, total, elapsed, line) => {
    expect(renderProgress('hashing fw.bin', done, total, elapsed)).toBe(line);
  });
});

// A file name is whoever made the file's (a CI artifact named by a pull request): drawn on the operator's terminal,
// it is shown, never obeyed (ADR 0047).
describe(`${renderProgress.name} with a hostile file name`, () => {
  it.each([
    ['fail an erase-line and a carriage return', 'fw\u001b[2K\r.bin', 'hashing fw\\u{1b}[2K\\u{d}.bin'],
    ['fail a right-to-left override', 'fw\u202enib.exe', 'hashing fw\\u{202e}nib.exe'],
    ['fail an OSC 52 clipboard write', 'a\u001b]52;c;ZXZpbA==\u0007', 'hashing a\\u{1b}]52;c;ZXZpbA==\\u{7}'],
    ['fail an 8-bit CSI', 'a\u009b2J', 'hashing a\\u{9b}2J'],
  ])('%s', (_name, file, shown) => {
    expect(renderProgress(`hashing ${file}`, 0, MIB, 0).startsWith(`${shown} [`)).toBe(true);
  });
});

describe(wantsProgress.name, () => {
  const big = PROGRESS_MIN_BYTES;
  it.each([
    ['ok terminal, large file', { isTTY: true, json: false, noProgress: false, bytes: big }, true],
    ['fail stderr is not a terminal (CI log)', { isTTY: false, json: false, noProgress: false, bytes: big }, false],
    ['fail stderr terminal unknown', { isTTY: undefined, json: false, noProgress: false, bytes: big }, false],
    ['fail --json', { isTTY: true, json: true, noProgress: false, bytes: big }, false],
    ['fail --no-progress', { isTTY: true, json: false, noProgress: true, bytes: big }, false],
    ['fail small file', { isTTY: true, json: false, noProgress: false, bytes: big - 1 }, false],
  ])('%s', (_name, o, want) => {
    expect(wantsProgress(o)).toBe(want);
  });
});

describe(ProgressBar.name, () => {
  it('redraws in place at most every interval and ends the line once', () => {
    let now = 0;
    const out: string[] = [];
    const bar = new ProgressBar('up', 10 * MIB, { write: (s: string) => out.push(s) }, () => now, 100);
    bar.tick(MIB); // first tick draws
    now = 50;
    bar.tick(MIB); // within the interval: no redraw
    now = 150;
    bar.tick(8 * MIB);
    bar.finish();
    expect(out).toHaveLength(4);
    expect(out.slice(0, 3).every((s) => s.startsWith('\r'))).toBe(true);
    expect(out[1]).toContain('100%');
    expect(out[3]).toBe('\n');
  });

  it('pads over a longer previous line so no stale text remains', () => {
    let now = 0;
    const out: string[] = [];
    const bar = new ProgressBar('up', 10 * MIB, { write: (s: string) => out.push(s) }, () => now, 0);
    now = 1000;
    bar.tick(MIB); // has an ETA
    now = 2000;
    bar.tick(9 * MIB); // finished: no ETA, shorter
    expect(out[1].length).toBe(out[0].length);
    expect(out[1].trimEnd()).not.toContain('ETA');
  });
});
