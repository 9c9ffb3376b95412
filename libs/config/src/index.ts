export {
  checkInsecureLoopback,
  ConfigError,
  csv,
  guid,
  insecureLoopbackFlag,
  isLoopbackHost,
  KEEP_ALIVE_IDLE_MS,
  keepIdleConnections,
  loadConfig,
  maskSecrets,
  port,
  postgresUrl,
  runOrExit,
  secureUrl,
} from './lib/config';
export { LOG_TARGET_MAX, logTarget, maskUrlCredentials, REDACTED, redactHeaders, redactText, redactUrl } from './lib/redact';
export { BootError, bootFailureReason, bootStep } from './lib/boot';
export {
  applyHttpTimeouts,
  connectionsCheckingInterval,
  HTTP_CONNECTION_DEFAULTS,
  HTTP_TIMEOUT_DEFAULTS,
  httpEdgeEnvShape,
  httpEdgeSettings,
  type HttpEdgeSettings,
} from './lib/http-edge';
