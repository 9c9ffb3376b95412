/** A boot step failure as one line naming what failed (printed by {@link runOrExit}). */
export class BootError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'BootError';
  }
}

/** Why a boot step failed, in one line: the first line of the error's message, with its code unless it already names it. */
export function bootFailureReason(err: unknown): string {
  const e = (typeof err === 'object' && err !== null ? err : {}) as { code?: unknown; message?: unknown };
  const code = typeof e.code === 'string' ? e.code : undefined;
  const message = typeof e.message === 'string' ? e.message.split('\n')[0] : undefined;
  // Coded errors (KeyserverError: "code: detail", Node's "connect ECONNREFUSED ...") already name their code.
  const reason = code && message?.includes(code) ? message : [code, message].filter(Boolean).join(': ');
  return reason || String(err);
}

/** Runs one boot step; a failure becomes a {@link BootError} "<what>: <reason>". */
export async function bootStep<T>(what: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw new BootError(`${what}: ${bootFailureReason(err)}`, { cause: err });
  }
}
