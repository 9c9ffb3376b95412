import { CliError, Exit, maskUrlUserInfo } from './errors';

describe(maskUrlUserInfo.name, () => {
  it.each([
    ['ok a URL without user-info is unchanged', 'unreachable at https://ks.example.com:8443/api?x=1', 'unreachable at https://ks.example.com:8443/api?x=1'],
    ['ok an @ in the path is not user-info', 'at https://ks.example.com/a@b', 'at https://ks.example.com/a@b'],
    ['fail user and password', 'at http://ops:pw@127.0.0.1:1: Request cannot be constructed from a URL that includes credentials: http://ops:pw@127.0.0.1:1/api/keys', 'at http://***@127.0.0.1:1: Request cannot be constructed from a URL that includes credentials: http://***@127.0.0.1:1/api/keys'],
    ['fail a user alone', 'HTTPS://token@host/x', 'HTTPS://***@host/x'],
  ])('%s', (_n, text, want) => {
    expect(maskUrlUserInfo(text)).toBe(want);
  });

  it('masks every message a CliError carries', () => {
    expect(new CliError('token endpoint unreachable: http://a:secret@h/token', Exit.Unavailable).message).toBe('token endpoint unreachable: http://***@h/token');
  });
});
