import type { IncomingMessage, ServerResponse } from 'node:http';
import type { KeyObject } from 'node:crypto';

/*
 * oidc-provider ships no type declarations; these describe only the parts the emulator uses.
 */

export interface OidcInteraction {
  uid: string;
  prompt: { name: string; reasons: string[]; details: Record<string, unknown> };
  params: Record<string, unknown>;
  session?: { accountId?: string };
  grantId?: string;
  lastSubmission?: Record<string, unknown>;
}

export interface OidcGrant {
  addOIDCScope(scope: string): void;
  addOIDCClaims(claims: string[]): void;
  addResourceScope(resource: string, scope: string): void;
  save(): Promise<string>;
}

export interface OidcSession {
  destroy(): Promise<void>;
}

export interface OidcProvider {
  issuer: string;
  proxy: boolean;
  callback(): (req: IncomingMessage, res: ServerResponse) => void;
  interactionDetails(req: IncomingMessage, res: ServerResponse): Promise<OidcInteraction>;
  interactionFinished(
    req: IncomingMessage,
    res: ServerResponse,
    result: Record<string, unknown>,
    options?: { mergeWithLastSubmission?: boolean },
  ): Promise<void>;
  on(event: string, listener: (...args: unknown[]) => void): void;
  Grant: {
    new (init: { accountId: string; clientId: string }): OidcGrant;
    find(id: string): Promise<OidcGrant | undefined>;
  };
  Session: { find(id: string): Promise<OidcSession | undefined> };
}

/** Base class oidc-provider accepts in `jwks.keys` for keys it does not hold itself. */
export declare class ExternalSigningKeyBase {
  get kid(): string | undefined;
  set kid(value: string | undefined);
  get alg(): string | undefined;
  set alg(value: string | undefined);
  keyObject(): KeyObject;
  sign(data: Buffer): Promise<Buffer> | Buffer;
}

export interface OidcProviderModule {
  Provider: new (issuer: string, configuration: Record<string, unknown>) => OidcProvider;
  ExternalSigningKey: typeof ExternalSigningKeyBase;
  errors: Record<string, new (description?: string) => Error>;
}

// Only these two known-harmless notices are dropped: oidc-provider's runtime check (the repo pins its Node LTS in
// .nvmrc, ADR 0013), and the token endpoint deliberately handing oidc-provider a body already parsed by Express.
const SILENCED = ['oidc-provider WARNING: Unsupported runtime', 'oidc-provider WARNING: already parsed request body'];
let filterInstalled = false;

function installWarningFilter(): void {
  if (filterInstalled) return;
  filterInstalled = true;
  const original = console.warn.bind(console);
  console.warn = (...args: unknown[]): void => {
    const first = args[0];
    if (typeof first === 'string' && SILENCED.some((s) => first.includes(s))) return;
    original(...args);
  };
}

let cached: OidcProviderModule | undefined;

/** Loads oidc-provider (ESM, loaded through require(esm) or jest's transform) with its runtime warning silenced. */
export function loadOidcProvider(): OidcProviderModule {
  if (!cached) {
    installWarningFilter();
    // Loaded lazily so the warning filter is in place before the module prints its runtime check.
    cached = require('oidc-provider') as OidcProviderModule;
  }
  return cached;
}
