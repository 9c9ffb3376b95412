export {
  errorClass,
  KeyserverError,
  PROBLEM_CONTENT_TYPE,
  type ProblemDetails,
  problemFor,
  rawProblemResponse,
} from './lib/keyserver-error';
export { isPostgresUnavailable, isUnavailableSqlState } from './lib/postgres-unavailable';
