import fc from 'fast-check';
import { preferredDocType } from './openapi.controller';

// Express' req.accepts() is the `accepts` package (negotiator): the decision the API made before Fastify.
const accepts = require('accepts') as (req: { headers: Record<string, string | undefined> }) => { type(types: string[]): string | false };
const express = (accept: string | undefined): string | undefined => accepts({ headers: { accept } }).type(['application/json', 'text/html']) || undefined;

describe(preferredDocType.name, () => {
  it.each([
    ['ok no Accept header: JSON', undefined, 'application/json'],
    ['ok a browser: HTML', 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8', 'text/html'],
    ['ok curl (*/*): JSON', '*/*', 'application/json'],
    ['ok JSON asked for', 'application/json', 'application/json'],
    ['ok HTML preferred by q', 'application/json;q=0.5, text/html', 'text/html'],
    ['ok text/* only: HTML', 'text/*', 'text/html'],
    ['fail nothing acceptable', 'image/png', undefined],
    ['fail everything refused with q=0', 'text/html;q=0, application/json;q=0', undefined],
  ])('%s', (_name, accept, expected) => {
    expect(preferredDocType(accept)).toBe(expected);
    expect(express(accept)).toBe(expected);
  });

  it('decides like Express for any Accept header built from common ranges (property)', () => {
    const range = fc.constantFrom('text/html', 'application/json', '*/*', 'text/*', 'application/*', 'image/png', 'application/xml', 'TEXT/HTML');
    const q = fc.option(fc.constantFrom('0', '0.1', '0.5', '0.8', '0.9', '1', '1.0'), { nil: undefined });
    const header = fc.array(fc.tuple(range, q), { minLength: 1, maxLength: 5 }).map((parts) => parts.map(([r, w]) => (w === undefined ? r : `${r};q=${w}`)).join(', '));
    fc.assert(
      fc.property(header, (h) => {
        expect(preferredDocType(h)).toBe(express(h));
      }),
      { seed: 32, numRuns: 2000 },
    );
  });
});
