import type { AuditInput, AuditRepository } from '@keyserver/data-access';
import { KeyserverError } from '@keyserver/errors';
import { ApiError, ApiErrorCode } from './api-error';
import { Audited, type AuditedOptions } from './audited';

class Fault extends KeyserverError<'hsm_down'> {
  readonly status = 503;
}
const EVENT: AuditInput = { action: 'thing.do', outcome: 'SUCCESS', requestId: 'r-1', actorSubjectId: 's-1' };

async function run(fn: (a: { event: AuditInput; committed(): void }) => Promise<unknown>, opts?: AuditedOptions): Promise<{ result: { ok: unknown } | { thrown: unknown }; appended: AuditInput[] }> {
  const appended: AuditInput[] = [];
  const audited = new Audited({ append: async (e: AuditInput) => void appended.push(e) } as unknown as AuditRepository);
  const result: { ok: unknown } | { thrown: unknown } = await audited.run({ ...EVENT }, fn, opts).then(
    (v) => ({ ok: v }),
    (err: unknown) => ({ thrown: err }),
  );
  return { result, appended };
}

describe(Audited.name, () => {
  it.each([
    ['ok a success appends nothing here (the repository wrote SUCCESS with the change)', async (): Promise<unknown> => 42, [], { ok: 42 }],
    ['fail a refusal is DENIED with its code', async (): Promise<unknown> => Promise.reject(new ApiError(ApiErrorCode.ValidationFailed)), [{ outcome: 'DENIED', errorCode: 'validation_failed' }], 'thrown'],
    ['fail a 5xx error is FAILED with its code', async (): Promise<unknown> => Promise.reject(new Fault('hsm_down')), [{ outcome: 'FAILED', errorCode: 'hsm_down' }], 'thrown'],
    ['fail anything else is FAILED internal_error', async (): Promise<unknown> => Promise.reject(new Error('boom')), [{ outcome: 'FAILED', errorCode: 'internal_error' }], 'thrown'],
  ] as const)('%s', async (_n, fn, expected, outcome) => {
    const { result, appended } = await run(fn);
    expect(appended).toEqual(expected.map((e) => ({ ...EVENT, ...e })));
    if (outcome === 'thrown') expect(result).toHaveProperty('thrown');
    else expect(result).toEqual(outcome);
  });

  it('records what the service learned before the refusal', async () => {
    const { appended } = await run(async (a) => {
      a.event.keyid = 'fw-1';
      throw new ApiError(ApiErrorCode.KeyNotPermitted);
    });
    expect(appended).toEqual([{ ...EVENT, keyid: 'fw-1', outcome: 'DENIED', errorCode: 'key_not_permitted' }]);
  });

  it('records nothing after the change committed (a failing read must not add a failure)', async () => {
    const { result, appended } = await run(async (a) => {
      a.committed();
      throw new Error('read failed');
    });
    expect(appended).toEqual([]);
    expect(result).toHaveProperty('thrown');
  });

  it('shapes the refusal and runs onError first', async () => {
    const order: string[] = [];
    const { appended } = await run(async () => Promise.reject(new ApiError(ApiErrorCode.OperationNotFound)), {
      onError: () => order.push('onError'),
      refusal: (e) => (order.push('refusal'), { ...e, details: { requestedId: 'x' } }),
    });
    expect(order).toEqual(['onError', 'refusal']);
    expect(appended[0]).toMatchObject({ details: { requestedId: 'x' }, outcome: 'DENIED', errorCode: 'operation_not_found' });
  });
});
