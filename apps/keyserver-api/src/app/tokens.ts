import type { Logger } from 'pino';
import type { Db } from '@keyserver/data-access';
import type { EntraTokenValidator } from '@keyserver/entra-token';
import type { HsmSigner } from '@keyserver/pki';
import type { ApiConfig } from '../config/api-config';

/**
 * Everything main.ts (the composition root) builds before Nest starts: it chooses the HSM signer (PKCS#11, or a
 * software signer in tools), opens the database and the token validator. AppModule.register turns each part into
 * a provider (below, and the repositories in ./repositories.ts); classes inject the parts they need, never the bag.
 */
export interface ApiDeps {
  config: ApiConfig;
  logger: Logger;
  db: Db;
  signer: HsmSigner;
  validator: EntraTokenValidator;
}

/** The whole bag: read only by the composition root's providers. */
export const DEPS = Symbol('ApiDeps');
/** The validated configuration ({@link ApiConfig}). */
export const API_CONFIG = Symbol('ApiConfig');
/** The process logger (pino). */
export const LOGGER = Symbol('Logger');
/** The database handle ({@link Db}); repositories are built on it. */
export const DATABASE = Symbol('Db');
/** The {@link HsmSigner} chosen at the composition root. */
export const HSM_SIGNER = Symbol('HsmSigner');
