// The problem filter lives in @keyserver/http-problems; re-exported for this library's modules and tests.
export {
  BODY_ERROR_CODES,
  INVALID_TOKEN_PROBLEM,
  ProblemDetailsFilter,
  renderProblem,
  WWW_AUTHENTICATE_INVALID_TOKEN,
  type RefusalObserver,
  type RenderedProblem,
} from '@keyserver/http-problems';
