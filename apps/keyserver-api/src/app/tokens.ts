import type { Logger } from 'pino';
import type { Db } from '@keyserver/data-access';
import type { EntraTokenValidator } from '@keyserver/entra-token';
import type { HsmSigner } from '@keyserver/pki';
import type { ApiConfig } from '../config/api-config';

/** Everything the composition root builds before Nest starts; injected under {@link DEPS}. */
export interface ApiDeps {
  config: ApiConfig;
  logger: Logger;
  db: Db;
  signer: HsmSigner;
  validator: EntraTokenValidator;
}

export const DEPS = Symbol('ApiDeps');
