// RFC 9457 problem+json rendering for the Nest HTTP apps: one filter, one pure renderer (issue 18: out of authz).
export {
  BODY_ERROR_CODES,
  INVALID_TOKEN_PROBLEM,
  ProblemDetailsFilter,
  REFUSAL_OBSERVER,
  renderProblem,
  WWW_AUTHENTICATE_INVALID_TOKEN,
  type RefusalObserver,
  type RenderedProblem,
} from './lib/problem.filter';
// The HTTP edge shared by the API and the keyclient: one notion of a client, one connection gate (ADR 0011, ADR 0043).
export { clientKey } from './lib/client-key';
export { bodyCoding } from './lib/body-coding';
export {
  ConnectionGate,
  DEFAULT_GATE_CODES,
  descriptorWarning,
  OTHER_DESCRIPTORS,
  responseInFlight,
  type ConnectionLimits,
  type ConnectionRefusal,
  type GateCodes,
  type RefusalListener,
  type TransportRefusalMark,
} from './lib/connections';
