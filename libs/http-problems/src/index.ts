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
