/** Injection token for the `EntraTokenValidator` (from @keyserver/entra-token). */
export const ENTRA_TOKEN_VALIDATOR = Symbol('KEYSERVER_ENTRA_TOKEN_VALIDATOR');
/** Injection token for the optional {@link AuthEventSink}. */
export const AUTH_EVENT_SINK = Symbol('KEYSERVER_AUTH_EVENT_SINK');
/** Injection token for {@link AuthzOptions}. */
export const AUTHZ_OPTIONS = Symbol('KEYSERVER_AUTHZ_OPTIONS');
/** Injection token for the optional {@link RefusalObserver} the problem filter consults. */
/** Injection token of the problem filter's refusal observer (declared in @keyserver/http-problems). */
export { REFUSAL_OBSERVER } from '@keyserver/http-problems';
/** Injection token for the optional {@link PrincipalGate} the guard consults after authorizing. */
export const PRINCIPAL_GATE = Symbol('KEYSERVER_PRINCIPAL_GATE');
