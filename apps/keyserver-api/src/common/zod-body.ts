import { ArgumentMetadata, Injectable, PipeTransform } from '@nestjs/common';
import { z } from 'zod';
import { ApiError, ApiErrorCode } from './api-error';

const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

/** Refuses prototype-pollution keys anywhere in a parsed JSON body. */
function assertNoForbiddenKeys(value: unknown, path: string[] = []): void {
  if (value === null || typeof value !== 'object') return;
  for (const key of Object.keys(value)) {
    if (FORBIDDEN_KEYS.has(key)) throw new ApiError(ApiErrorCode.ValidationFailed, `forbidden field name at ${[...path, key].join('.')}`);
    assertNoForbiddenKeys((value as Record<string, unknown>)[key], [...path, key]);
  }
}

/** Validates a request body against a strict zod schema; the first issue becomes a 400 with a field path. */
@Injectable()
export class ZodBody<S extends z.ZodType> implements PipeTransform<unknown, z.output<S>> {
  constructor(private readonly schema: S) {}

  transform(value: unknown, _meta: ArgumentMetadata): z.output<S> {
    assertNoForbiddenKeys(value);
    const r = this.schema.safeParse(value);
    if (r.success) return r.data;
    const issue = r.error.issues[0];
    const at = issue.path.length ? issue.path.map(String).join('.') : 'body';
    throw new ApiError(ApiErrorCode.ValidationFailed, `${at}: ${issue.message}`);
  }
}
