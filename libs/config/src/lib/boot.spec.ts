import { KeyserverError } from '@keyserver/errors';
import { BootError, bootFailureReason, bootStep } from './boot';

/** A module's coded error, shaped like entra-token's EntraMetadataError (message = "code: detail"). */
class EntraMetadataError extends KeyserverError<string> {
  readonly status = 503;
}

/** A Node system error as net/fs raise them (the code is also in the message). */
function systemError(code: string, message: string): Error {
  return Object.assign(new Error(message), { code });
}

describe(bootFailureReason.name, () => {
  it.each([
    ['ok a coded error with a detail names the code once', new EntraMetadataError('metadata_unreachable', 'fetch failed'), 'metadata_unreachable: fetch failed'],
    ['ok a coded error without a detail is its code', new EntraMetadataError('jwks_invalid'), 'jwks_invalid'],
    ['ok a system error whose message holds the code names it once', systemError('ECONNREFUSED', 'connect ECONNREFUSED 127.0.0.1:1'), 'connect ECONNREFUSED 127.0.0.1:1'],
    ['ok a coded error whose message lacks the code gets it in front', systemError('P1001', "Can't reach database server"), "P1001: Can't reach database server"],
    ['ok a plain error is its message', new Error('no such token'), 'no such token'],
    ['ok only the first line of a message', new Error('first line\n    at stack()'), 'first line'],
    ['ok a thrown string', 'boom', 'boom'],
  ])('%s', (_name, err, expected) => {
    expect(bootFailureReason(err)).toBe(expected);
  });
});

describe(bootStep.name, () => {
  it('names the step and the reason once, keeping the cause', async () => {
    const cause = new EntraMetadataError('metadata_unreachable', 'fetch failed');
    const err = await bootStep('cannot use OPENID_CONNECT_METADATA_DOCUMENT http://127.0.0.1:1/x', () => Promise.reject(cause)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BootError);
    expect((err as BootError).message).toBe('cannot use OPENID_CONNECT_METADATA_DOCUMENT http://127.0.0.1:1/x: metadata_unreachable: fetch failed');
    expect((err as BootError).cause).toBe(cause);
  });

  it('returns what the step returns', async () => {
    expect(await bootStep('x', () => Promise.resolve(42))).toBe(42);
  });
});
