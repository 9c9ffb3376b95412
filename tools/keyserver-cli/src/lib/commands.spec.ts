import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bashCompletion, COMMANDS, completionScript, zshCompletion } from './commands';
import { CliError, Exit } from './errors';

/** What bash itself completes for a command line (the script sourced into a real bash). */
function bashComplete(line: string): string[] {
  const dir = mkdtempSync(join(tmpdir(), 'ksctl-compl-'));
  try {
    const script = join(dir, 'ksctl.bash');
    writeFileSync(script, bashCompletion());
    const words = line.split(' ');
    const r = spawnSync(
      'bash',
      ['-c', `source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(( $# - 1 )); _ksctl; printf '%s\\n' "\${COMPREPLY[@]}"`, 'bash', script, ...words],
      { cwd: dir, encoding: 'utf8' },
    );
    expect(r.stderr).toBe('');
    return r.stdout.split('\n').filter(Boolean);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe(bashCompletion.name, () => {
  it.each([
    ['ok commands', 'ksctl ', ['admin', 'audit', 'cert', 'completion', 'help', 'keys', 'login', 'operations', 'sign', 'verify']],
    ['ok a command by its prefix', 'ksctl op', ['operations']],
    ['ok subcommands', 'ksctl keys ', ['list', 'show']],
    ['ok subcommands after a global option', 'ksctl --demo keys s', ['show']],
    ['ok option values', 'ksctl sign --hash sha', ['sha256', 'sha384', 'sha512']],
    ['ok --output values', 'ksctl cert issue --output ', ['table', 'json', 'pem', 'der']],
    ['ok a command option', 'ksctl sign --idem', ['--idempotency-key']],
    ['ok the shells', 'ksctl completion ', ['bash', 'zsh']],
    ['ok admin areas', 'ksctl admin ', ['session', 'root-ceremony', 'key', 'role', 'subject']],
    ['ok key algorithms', 'ksctl admin key create --algorithm EC_', ['EC_P256', 'EC_P384', 'EC_P521']],
  ])('%s', (_n, line, want) => {
    expect(bashComplete(line).filter((w) => !w.startsWith('ksctl.bash')).sort()).toEqual([...want].sort());
  });

  it('offers every command and every command option it declares', () => {
    for (const c of COMMANDS) {
      expect(bashComplete(`ksctl ${c.name.slice(0, 3)}`)).toContain(c.name);
      for (const o of c.options) expect(bashComplete(`ksctl ${c.name} ${o}`)).toContain(o);
    }
  });
});

describe(zshCompletion.name, () => {
  it('is a compsys function for ksctl naming every command', () => {
    const z = zshCompletion();
    expect(z.startsWith('#compdef ksctl\n')).toBe(true);
    for (const c of COMMANDS) expect(z).toContain(`    ${c.name}) subs=(`);
  });

  it('parses in zsh when zsh is installed', () => {
    const probe = spawnSync('zsh', ['-c', 'true']);
    if (probe.error) return; // no zsh on this machine: the bash test above runs the shared command table
    const r = spawnSync('zsh', ['-n', '/dev/stdin'], { input: zshCompletion(), encoding: 'utf8' });
    expect([r.status, r.stderr]).toEqual([0, '']);
  });
});

describe(completionScript.name, () => {
  it.each([['fail no shell', undefined], ['fail fish', 'fish'], ['fail a case variant', 'BASH']])('%s: usage (exit 2)', (_n, shell) => {
    let exit: Exit | undefined;
    try {
      completionScript(shell);
    } catch (e) {
      exit = (e as CliError).exit;
    }
    expect(exit).toBe(Exit.Usage);
  });
});
