import type { Logger } from 'pino';

/**
 * On the first SIGTERM or SIGINT: logs `{event:"shutdown", signal, uptimeSeconds}`, runs `close`, logs
 * `{event:"stopped", signal, uptimeSeconds, closeMs}` and exits 0 (1 when closing failed, with the error logged).
 * A second signal while closing exits at once (an operator pressing Ctrl-C twice).
 */
export function exitOnSignals(logger: Logger, close: () => Promise<void>, options: { now?: () => number; exit?: (code: number) => void } = {}): (signal: NodeJS.Signals) => Promise<void> {
  const now = options.now ?? Date.now;
  const exit = options.exit ?? ((code: number) => process.exit(code));
  const startedAt = now() - Math.round(process.uptime() * 1000);
  let closing = false;
  const uptime = () => Math.round((now() - startedAt) / 1000);
  const onSignal = async (signal: NodeJS.Signals): Promise<void> => {
    if (closing) {
      logger.warn({ event: 'shutdown_forced', signal, uptimeSeconds: uptime() }, 'second signal: exiting now');
      exit(1);
      return;
    }
    closing = true;
    const begin = now();
    logger.info({ event: 'shutdown', signal, uptimeSeconds: uptime() }, 'shutting down');
    try {
      await close();
      logger.info({ event: 'stopped', signal, uptimeSeconds: uptime(), closeMs: now() - begin }, 'stopped');
      logger.flush?.();
      exit(0);
    } catch (err) {
      logger.error({ event: 'shutdown_failed', signal, err: err instanceof Error ? err.message : String(err) }, 'shutdown failed');
      logger.flush?.();
      exit(1);
    }
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  return onSignal;
}
