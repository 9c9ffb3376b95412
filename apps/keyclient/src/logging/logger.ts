import pino, { type DestinationStream, type Logger } from 'pino';
import type { KeyclientConfig } from '../config/keyclient-config';

/** JSON logger; credentials and cookies are redacted wherever they might appear. */
export function createLogger(config: Pick<KeyclientConfig, 'logLevel'>, destination?: DestinationStream): Logger {
  return pino(
    {
      level: config.logLevel,
      base: { service: 'keyclient' },
      redact: {
        paths: [
          'req.headers.authorization',
          'req.headers.cookie',
          'res.headers["set-cookie"]',
          'headers.authorization',
          'headers.cookie',
          '*.accessToken',
          '*.refreshToken',
          '*.idToken',
          '*.clientSecret',
        ],
        censor: '***',
      },
    },
    destination,
  );
}
