import { HttpErrorResponse, HttpHeaders } from '@angular/common/http';
import { problemMessage, toProblem } from './problem';
import { PROBLEM_MESSAGES } from './problem-messages';

describe('toProblem', () => {
  it('reads an RFC 9457 problem+json body', () => {
    const err = new HttpErrorResponse({
      status: 409,
      statusText: 'Conflict',
      error: { type: 'https://keyserver/problems/already_approved', title: 'Already approved', status: 409, code: 'already_approved', detail: 'once', requestId: 'r-1' },
    });
    expect(toProblem(err)).toEqual({ type: 'https://keyserver/problems/already_approved', title: 'Already approved', status: 409, code: 'already_approved', detail: 'once', requestId: 'r-1' });
  });

  it('reads a problem delivered as text (fetch backend with a non-JSON content type)', () => {
    const err = new HttpErrorResponse({ status: 403, error: JSON.stringify({ type: 'about:blank', title: 'Refused', status: 403, code: 'csrf_rejected' }) });
    expect(toProblem(err).code).toBe('csrf_rejected');
  });

  it('maps a network failure to network_error', () => {
    expect(toProblem(new HttpErrorResponse({ status: 0, error: new ProgressEvent('error') })).code).toBe('network_error');
  });

  it.each([
    [401, 'unauthenticated'],
    [403, 'forbidden'],
    [404, 'not_found'],
    [502, 'internal_error'],
  ])('maps a bare %i to %s and keeps the request id header', (status, code) => {
    const p = toProblem(new HttpErrorResponse({ status, error: '<html>', headers: new HttpHeaders({ 'x-request-id': 'rid-9' }) }));
    expect(p.code).toBe(code);
    expect(p.requestId).toBe('rid-9');
  });

  it('maps a non-HTTP error to internal_error', () => {
    expect(toProblem(new Error('boom')).code).toBe('internal_error');
  });
});

describe('problemMessage', () => {
  it('uses the plain words of the table for a known code', () => {
    expect(problemMessage({ type: 'x', title: 'Self approval', status: 403, code: 'self_approval_forbidden' })).toBe(PROBLEM_MESSAGES['self_approval_forbidden']);
  });

  it('falls back to the title for an unknown code', () => {
    expect(problemMessage({ type: 'x', title: 'Something new', status: 400, code: 'brand_new_code' })).toBe('Something new');
  });

  // Codes the keyclient and the Keyserver API answer with today; each must read as plain words.
  it.each([
    'unauthenticated', 'csrf_rejected', 'proxy_route_forbidden', 'upstream_unavailable', 'upstream_timeout', 'validation_failed',
    'operation_not_found', 'operation_closed', 'operation_expired', 'already_approved', 'not_an_approver', 'self_approval_forbidden',
    'cancellation_not_allowed', 'certificate_not_found', 'revocation_not_allowed', 'admin_session_required', 'admin_session_not_active',
    'admin_session_not_participant', 'already_authorized', 'subject_exists', 'role_exists', 'human_only_nature', 'key_not_found',
    'unknown_subject', 'subject_disabled', 'member_account_required', 'permission_denied', 'key_permission_denied', 'token_expired',
    'session_store_unavailable', 'database_unavailable',
    // Added 2026-12-07: the keyclient's and the API's answer to an unmet Expect, a grant refused to a guest, a
    // change of who administers or approves in a session not opened with powers (ADR 0044).
    'expectation_failed', 'subject_is_guest', 'admin_session_scope',
    // Added 2026-12-07: a change that would leave fewer administrators than a session needs (ADR 0012 addendum).
    'too_few_administrators',
    // Added 2026-12-07: the connection gate of the API and the keyclient (ADR 0011 addendum "connections", ADR 0043
    // addendum "the keyclient's transport"), answered at accept with Retry-After: 1.
    'connection_limit_reached', 'client_connection_limit_reached',
  ])('ok the table words %s', (code) => {
    expect(PROBLEM_MESSAGES[code]).toMatch(/^[A-Z].+\.$/);
  });

  it.each([
    ['ok connection_limit_reached says the server is busy and to retry', 'connection_limit_reached'],
    ['ok client_connection_limit_reached says this network holds too many connections and to retry', 'client_connection_limit_reached'],
  ])('%s', (_name, code) => {
    const words = problemMessage({ type: 'x', title: 'Service Unavailable', status: 503, code });
    expect(words).not.toBe('Service Unavailable');
    expect(words).toMatch(/try again/i);
  });
});
