import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot } from '@keyserver/testing';

/**
 * scripts/install-pkcs11-provider.sh (ADR 0031): the backports source it adds reuses the URI and keyring of the
 * machine's own Debian source. --print-source shows that source and changes nothing; the apt directory is a
 * temporary one here (hosts under .invalid, RFC 2606: never a real mirror).
 */
describe('scripts/install-pkcs11-provider.sh', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'ks-apt-'));
    mkdirSync(join(dir, 'sources.list.d'));
    writeFileSync(join(dir, 'os-release'), 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nVERSION_CODENAME=bookworm\nID=debian\n');
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const printSource = (files: Record<string, string>) => {
    for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
    const r = spawnSync('bash', [join(repoRoot, 'scripts', 'install-pkcs11-provider.sh'), '--print-source'], {
      encoding: 'utf8',
      env: { PATH: process.env['PATH'] ?? '', KS_APT_DIR: dir, KS_OS_RELEASE: join(dir, 'os-release') },
    });
    return { status: r.status, out: r.stdout, err: r.stderr };
  };
  const stanza = (uri: string, key?: string) =>
    ['# Added by scripts/install-pkcs11-provider.sh (the Keyserver\'s pkcs11-provider); same archive as the release.', 'Types: deb', `URIs: ${uri}`,
      'Suites: bookworm-backports', 'Components: main', ...(key ? [`Signed-By: ${key}`] : []), ''].join('\n');
  const KEY = '/usr/share/keyrings/debian-archive-keyring.gpg';
  const security = `Types: deb\nURIs: http://security.invalid/debian-security\nSuites: bookworm-security\nComponents: main\nSigned-By: ${KEY}\n`;

  it.each<[string, Record<string, string>, string]>([
    ['ok a deb822 source after the security one (the release stanza, its keyring)',
      { 'sources.list.d/debian.sources': `${security}\n# a comment\nTypes: deb deb-src\nURIs: http://mirror.invalid/debian\nSuites: bookworm bookworm-updates\nComponents: main\nSigned-By: ${KEY}\n` },
      stanza('http://mirror.invalid/debian', KEY)],
    ['ok skips a disabled stanza and a deb-src-only one',
      { 'sources.list.d/debian.sources': `Types: deb\nURIs: http://old.invalid/debian\nSuites: bookworm\nComponents: main\nEnabled: no\n\nTypes: deb-src\nURIs: http://src.invalid/debian\nSuites: bookworm\nComponents: main\n\nTypes: deb\nURIs: http://mirror.invalid/debian\nSuites: bookworm\nComponents: main\n` },
      stanza('http://mirror.invalid/debian')],
    ['ok a one-line sources.list with options (signed-by kept)',
      { 'sources.list': `# deb http://commented.invalid/debian bookworm main\ndeb [arch=amd64 signed-by=${KEY}] http://mirror.invalid/debian bookworm main contrib\ndeb http://security.invalid/debian-security bookworm-security main\n` },
      stanza('http://mirror.invalid/debian', KEY)],
    ['ok a one-line source without options',
      { 'sources.list': 'deb http://mirror.invalid/debian bookworm-updates main\ndeb http://mirror.invalid/debian bookworm main\n' },
      stanza('http://mirror.invalid/debian')],
    ['ok nothing to add when the suite is configured already',
      { 'sources.list': 'deb http://mirror.invalid/debian bookworm main\ndeb http://mirror.invalid/debian bookworm-backports main\n' },
      ''],
  ])('%s', (_name, files, expected) => {
    const r = printSource(files);
    expect([r.status, r.out, r.err]).toEqual([0, expected, '']);
  });

  it.each<[string, Record<string, string>]>([
    ['fail no source for the release (only security, and a backports suite named in a comment or a disabled file)',
      { 'sources.list.d/debian.sources': security, 'sources.list': '# deb http://mirror.invalid/debian bookworm-backports main\n', 'sources.list.d/old.list.disabled': 'deb http://mirror.invalid/debian bookworm main\n' }],
    ['fail no apt sources at all', {}],
  ])('%s', (_name, files) => {
    const r = printSource(files);
    expect([r.status, r.out, r.err]).toEqual([1, '', 'install-pkcs11-provider: no apt source for bookworm found to add bookworm-backports to\n']);
  });

  it('fail an os-release without a codename', () => {
    writeFileSync(join(dir, 'os-release'), 'ID=debian\n');
    const r = printSource({ 'sources.list': 'deb http://mirror.invalid/debian bookworm main\n' });
    expect([r.status, r.err]).toEqual([1, expect.stringContaining('no VERSION_CODENAME')]);
  });
});
