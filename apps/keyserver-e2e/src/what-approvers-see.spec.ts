import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot, startPlatform, type RunningPlatform } from '@keyserver/testing';
import { userToken } from './operations-support';

// ADR 0047: what an orderer writes reaches an approver's terminal as visible text, never as terminal commands.

const KSCTL = join(repoRoot, 'dist', 'tools', 'keyserver-cli', 'main.js');

/** Every character a terminal obeys or hides: C0 but newline, DEL, C1, format (bidi, zero-width), line separators. */
// eslint-disable-next-line no-control-regex
const OBEYED_OR_HIDDEN = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\p{Cf}\u2028\u2029]/u;

/**
 * What the API takes as an operation description (it refuses only NUL and lone surrogates): an erase-line and a
 * carriage return, a clipboard write (OSC 52), a hyperlink (OSC 8), a title change, a right-to-left override that
 * turns "exe.png" around, zero-width and isolate characters, an 8-bit CSI (U+009B) and a line separator.
 */
const HOSTILE =
  'Release 1.2.3 for product A\u001b[2K\rApproved by security\u001b]52;c;ZXZpbA==\u0007 \u001b]8;;https://evil.example/\u001b\\docs\u001b]8;;\u001b\\' +
  ' \u001b]0;title\u0007 file \u202egnp.exe\u202c u\u200bsages \u2066x\u2069 \u009b2J \u2028 end';

describe('what an approver sees in ksctl', () => {
  let p: RunningPlatform;
  let work: string;
  let demoFile: string;

  const ksctl = (...args: string[]) => ksctlWith({}, '--demo', demoFile, ...args);
  /** A pipeline's name is the CI's, written by whoever edits the pipeline: ksctl declares it as provenance. */
  const PIPELINE = 'nightly \u202egnp.exe\u202c \u200bbuild';
  const ksctlWith = (env: Record<string, string>, ...args: string[]) => {
    const r = spawnSync(process.execPath, [KSCTL, ...args], {
      encoding: 'utf8',
      env: { PATH: process.env['PATH'] ?? '', KSCTL_CACHE_DIR: join(work, 'cache'), ...env },
      timeout: 60_000,
    });
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
  };

  beforeAll(async () => {
    p = await startPlatform();
    work = mkdtempSync(join(tmpdir(), 'ks-see-'));
    demoFile = join(work, 'demo.json');
    writeFileSync(demoFile, JSON.stringify(p.facts));
  });

  afterAll(async () => {
    await p?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('shows an orderer-written description with every control visible, in a table and in --json', () => {
    const ci = { TF_BUILD: 'True', BUILD_BUILDID: '7', BUILD_DEFINITIONNAME: PIPELINE };
    const created = ksctlWith(ci, '--demo', demoFile, '--json', 'operations', 'create', '--key', 'demo-fw-dev=1', '--description', HOSTILE);
    expect(created.status).toBe(0);
    const id = (JSON.parse(created.stdout) as { id: string }).id;

    const shown = ksctl('operations', 'show', id);
    expect(shown.status).toBe(0);
    expect(shown.stdout).not.toMatch(OBEYED_OR_HIDDEN);
    const line = shown.stdout.split('\n').find((l) => l.startsWith('description'));
    expect(line).toContain('Release 1.2.3 for product A\\u{1b}[2K\\u{d}Approved');
    // All of it (a detail is not cut at a column width), the override named, not obeyed; and a warning.
    expect(line).toContain('file \\u{202e}gnp.exe\\u{202c} u\\u{200b}sages \\u{2066}x\\u{2069} \\u{9b}2J \\u{2028} end');
    expect(shown.stdout).toContain('provenance.pipeline  nightly \\u{202e}gnp.exe\\u{202c} \\u{200b}build');
    expect(shown.stdout).toContain('hidden or control characters');

    const json = ksctl('--json', 'operations', 'show', id);
    expect(json.status).toBe(0);
    expect(json.stdout.trimEnd()).not.toContain('\n');
    expect(json.stdout).not.toMatch(OBEYED_OR_HIDDEN);
    // The same value for a script: the escapes are JSON's own.
    expect((JSON.parse(json.stdout) as { description: string }).description).toBe(HOSTILE);
  });

  it('exports the audit log to the terminal with the declared pipeline escaped, and that export still verifies', async () => {
    const auditor = await userToken(p, 'aude.auditor@demo.test', 'keyclient');
    const exported = ksctlWith({ KEYSERVER_TOKEN: auditor }, '--api', p.env.urls.api, 'audit', 'export');
    expect(exported.status).toBe(0);
    expect(exported.stdout).not.toMatch(OBEYED_OR_HIDDEN);
    expect(exported.stdout).toContain('\\u202egnp.exe\\u202c');
    const file = join(work, 'audit.jsonl');
    writeFileSync(file, exported.stdout);
    const verified = ksctlWith({}, '--json', 'audit', 'verify', file);
    expect([verified.status, (JSON.parse(verified.stdout) as { verified: boolean }).verified]).toEqual([0, true]);
  });
});
