import { SignOrderRequest } from '@keyserver/api-contract';
import { ZodBody } from './zod-body';
import { EdgeRefusal } from './api-error';

const OP = '7c9e6679-7425-40de-944b-e07fc1f90ae7';
const message = { operationid: OP, keyid: 'fw-ed', message: 'AQID', description: 'a message order' };
const digest = { operationid: OP, keyid: 'fw', inputdata: 'ab'.repeat(32), inputformat: 'hex', inputpadding: 'none', signatureformat: 'asn1', description: 'a digest order' };

describe(ZodBody.name, () => {
  const pipe = new ZodBody(SignOrderRequest);
  const refusal = (body: unknown): string => {
    try {
      pipe.transform(body);
    } catch (e) {
      expect(e).toBeInstanceOf(EdgeRefusal);
      expect((e as EdgeRefusal).code).toBe('validation_failed');
      return (e as EdgeRefusal).message;
    }
    throw new Error('accepted');
  };

  it.each([
    ['ok a message order', message],
    ['ok a digest order', digest],
  ])('%s passes as it is', (_n, body) => {
    expect(pipe.transform(body)).toEqual(body);
  });

  // A union's refusal names the field of the alternative the body came closest to, not zod's "Invalid input".
  it.each([
    ['fail a message order with a signature format', { ...message, signatureformat: 'p1363' }, /signatureformat/],
    ['fail an empty message', { ...message, message: '' }, / message: /],
    ['fail a message that is not a string', { ...message, message: 7 }, / message: /],
    ['fail a digest order without inputpadding', { ...digest, inputpadding: undefined }, / inputpadding: /],
    ['fail a digest order with a message too', { ...digest, message: 'AQID' }, /message/],
  ])('%s: 400 validation_failed naming the field', (_n, body, detail) => {
    expect(refusal(body)).toMatch(detail);
  });
});
