import { expect } from '@jest/globals';
import { CliError, Exit } from '../lib/errors';

// Specs compare a refusal's exit status and code, never its message.

/** `fn` throws a CliError with exit Invalid and `code`. */
export function expectInvalid(fn: () => unknown, code: string): void {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(CliError);
  expect([(err as CliError).exit, (err as CliError).code]).toEqual([Exit.Invalid, code]);
}

/** `p` rejects with a CliError with exit Invalid and `code`. */
export async function expectInvalidAsync(p: Promise<unknown>, code: string): Promise<void> {
  const err = await p.then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(CliError);
  expect([(err as CliError).exit, (err as CliError).code]).toEqual([Exit.Invalid, code]);
}
