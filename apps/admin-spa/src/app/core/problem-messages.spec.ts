import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CONSOLE_ROUTES } from '@keyserver/api-contract/console-routes';
import { PROBLEM_MESSAGES } from './problem-messages';

type Operation = { responses?: Record<string, { content?: Record<string, { schema?: unknown }> }> };

/** Every `code` enum of a problem+json answer of one API operation (docs/openapi.json, derived from the error classes). */
function problemCodes(op: Operation): string[] {
  const codes: string[] = [];
  const walk = (node: unknown): void => {
    if (Array.isArray(node)) node.forEach(walk);
    else if (node && typeof node === 'object') {
      const o = node as Record<string, unknown>;
      const code = (o['properties'] as Record<string, { enum?: string[] }> | undefined)?.['code'];
      if (code?.enum) codes.push(...code.enum);
      Object.values(o).forEach(walk);
    }
  };
  for (const r of Object.values(op.responses ?? {})) walk(r.content?.['application/problem+json']?.schema);
  return codes;
}

describe('PROBLEM_MESSAGES', () => {
  const openapi = JSON.parse(readFileSync(join(__dirname, '../../../../../docs/openapi.json'), 'utf8')) as { paths: Record<string, Record<string, Operation>> };
  const operationOf = (method: string, pattern: string): Operation | undefined =>
    Object.entries(openapi.paths).find(([path]) => path.replace(/\{[^}]+\}/g, ':id') === pattern)?.[1][method.toLowerCase()];
  const reachable = [...new Set(CONSOLE_ROUTES.flatMap(([m, p]) => problemCodes(operationOf(m, p) ?? {})))].sort();

  it('ok the console routes answer problem codes at all (the walk over docs/openapi.json finds them)', () => {
    expect(reachable.length).toBeGreaterThan(50);
  });

  it('ok every problem code a console route can answer has plain words (none falls back to a bare title)', () => {
    expect(reachable.filter((code) => !(code in PROBLEM_MESSAGES))).toEqual([]);
  });
});
