import {
  ClassProvider,
  DynamicModule,
  ExistingProvider,
  FactoryProvider,
  Module,
  ModuleMetadata,
  Provider,
  ValueProvider,
} from '@nestjs/common';
import { APP_FILTER, APP_GUARD, DiscoveryModule } from '@nestjs/core';
import type { EntraTokenValidator } from '@keyserver/entra-token';
import { EntraAuthGuard, type PrincipalGate } from './auth.guard';
import { AuthEventSink } from './auth-events';
import { ProblemDetailsFilter, RefusalObserver } from '@keyserver/http-problems';
import { PublicRoute } from './public-routes';
import { RouteAuthorizationAudit } from './route-audit';
import { SUBJECT_RESOLVER, SubjectResolver } from './subject';
import { AUTH_EVENT_SINK, AUTHZ_OPTIONS, ENTRA_TOKEN_VALIDATOR, PRINCIPAL_GATE, REFUSAL_OBSERVER } from './tokens';

/** A provider definition without its `provide` (the module supplies the token). */
export type ProviderSpec<T> =
  | Omit<ClassProvider<T>, 'provide'>
  | Omit<ValueProvider<T>, 'provide'>
  | Omit<FactoryProvider<T>, 'provide'>
  | Omit<ExistingProvider<T>, 'provide'>;

export interface AuthzModuleOptions {
  /** The registry of every `@Public()` route (checked at boot). */
  publicRoutes: readonly PublicRoute[];
  /** How to build the validator, typically a factory calling loadEntraMetadata + createEntraTokenValidator. */
  validator: ProviderSpec<EntraTokenValidator>;
  /** The API's database-backed resolver. */
  subjectResolver: ProviderSpec<SubjectResolver>;
  /** Optional audit hook for refused requests. */
  eventSink?: ProviderSpec<AuthEventSink>;
  /** Optional hook that sees every 4xx before it is sent (audit of edge refusals, rate limits). */
  refusalObserver?: ProviderSpec<RefusalObserver>;
  /** Optional check of every authorized caller before its handler (per-principal rate limits). */
  principalGate?: ProviderSpec<PrincipalGate>;
  /** Modules the factories above need (config, data access). */
  imports?: ModuleMetadata['imports'];
}

/**
 * Global authentication/authorization wiring: the deny-by-default {@link EntraAuthGuard} as APP_GUARD,
 * the {@link ProblemDetailsFilter} as APP_FILTER and the boot-time {@link RouteAuthorizationAudit}.
 */
@Module({})
export class AuthzModule {
  static forRoot(options: AuthzModuleOptions): DynamicModule {
    const providers: Provider[] = [
      { provide: ENTRA_TOKEN_VALIDATOR, ...options.validator } as Provider,
      { provide: SUBJECT_RESOLVER, ...options.subjectResolver } as Provider,
      { provide: AUTHZ_OPTIONS, useValue: { publicRoutes: options.publicRoutes } },
      { provide: APP_GUARD, useClass: EntraAuthGuard },
      { provide: APP_FILTER, useClass: ProblemDetailsFilter },
      RouteAuthorizationAudit,
    ];
    if (options.eventSink) providers.push({ provide: AUTH_EVENT_SINK, ...options.eventSink } as Provider);
    if (options.refusalObserver) providers.push({ provide: REFUSAL_OBSERVER, ...options.refusalObserver } as Provider);
    if (options.principalGate) providers.push({ provide: PRINCIPAL_GATE, ...options.principalGate } as Provider);
    return {
      module: AuthzModule,
      global: true,
      imports: [DiscoveryModule, ...(options.imports ?? [])],
      providers,
      exports: [ENTRA_TOKEN_VALIDATOR, SUBJECT_RESOLVER],
    };
  }
}
