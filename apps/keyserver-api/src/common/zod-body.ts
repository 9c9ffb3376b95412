import { Injectable, PipeTransform } from '@nestjs/common';
import { z } from 'zod';
import { checkJsonValue } from '../edge/input-checks';
import { ApiErrorCode, EdgeRefusal } from './api-error';

/** The pipe's own depth cap (JsonBodyMiddleware applies MAX_JSON_DEPTH first; this is the bound for any other caller). */
const PIPE_MAX_DEPTH = 256;

/**
 * A union's refusal names the issue of the alternative the body came closest to (fewest issues), not zod's bare
 * "Invalid input": a message sign order with a stray `inputformat` is told about `inputformat`.
 */
function closestIssue(issue: z.core.$ZodIssue): z.core.$ZodIssue {
  if (issue.code !== 'invalid_union' || issue.errors.length === 0) return issue;
  const best = issue.errors.reduce((a, b) => (b.length < a.length ? b : a));
  return best.length > 0 ? closestIssue({ ...best[0], path: [...issue.path, ...best[0].path] }) : issue;
}

/**
 * Validates a request body against a strict zod schema; the first issue becomes a 400 with a field path. Pipes run
 * before the handler, so these refusals are {@link EdgeRefusal}s (audited by the refusal observer).
 */
@Injectable()
export class ZodBody<S extends z.ZodType> implements PipeTransform<unknown, z.output<S>> {
  constructor(private readonly schema: S) {}

  transform(value: unknown): z.output<S> {
    checkJsonValue(value, PIPE_MAX_DEPTH);
    const r = this.schema.safeParse(value);
    if (r.success) return r.data;
    const issue = closestIssue(r.error.issues[0]);
    const at = issue.path.length ? issue.path.map(String).join('.') : 'body';
    throw new EdgeRefusal(ApiErrorCode.ValidationFailed, `${at}: ${issue.message}`);
  }
}
