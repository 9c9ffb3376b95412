import { bodyCoding } from './body-coding';

describe(bodyCoding.name, () => {
  it.each([
    ['fail gzip', { 'content-encoding': 'gzip' }, 'content-encoding'],
    ['fail upper-case GZIP', { 'content-encoding': 'GZIP' }, 'content-encoding'],
    ['fail an unknown coding', { 'content-encoding': 'x-made-up' }, 'content-encoding'],
    ['fail gzip under chunked', { 'transfer-encoding': 'gzip, chunked' }, 'transfer-encoding'],
    ['fail deflate,chunked', { 'transfer-encoding': 'deflate,chunked' }, 'transfer-encoding'],
    ['ok no coding', {}, undefined],
    ['ok identity', { 'content-encoding': ' Identity ' }, undefined],
    ['ok chunked', { 'transfer-encoding': 'Chunked' }, undefined],
  ] as const)('%s', (_name, headers, expected) => {
    expect(bodyCoding(headers)).toBe(expected);
  });
});
