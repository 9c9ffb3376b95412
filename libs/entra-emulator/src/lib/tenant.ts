import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { EntraEmulatorError, EntraEmulatorErrorCode } from './emulator-error';

const guid = z
  .string()
  .regex(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i, 'must be a GUID');
const absoluteUrl = z.string().url();

const federatedCredentialSchema = z.object({
  issuer: absoluteUrl,
  subject: z.string().min(1),
  audience: z.string().min(1),
});

/** A PEM X.509 certificate (the public half of a certificate credential, as uploaded to an app registration). */
const certificatePem = z.string().refine((pem) => {
  try {
    new X509Certificate(pem);
    return pem.includes('-----BEGIN CERTIFICATE-----');
  } catch {
    return false;
  }
}, 'must be a PEM X.509 certificate');

const ciClientSchema = z.object({
  name: z.string().min(1),
  clientId: guid,
  clientSecret: z.string().min(8).optional(),
  servicePrincipalOid: guid,
  appRoles: z.array(z.string().min(1)).default([]),
  federatedCredentials: z.array(federatedCredentialSchema).default([]),
  /** Certificate credentials: the client signs RFC 7523 client assertions with the matching private key. */
  certificates: z.array(certificatePem).default([]),
});

const userSchema = z.object({
  username: z.string().min(1),
  password: z.string().min(1),
  name: z.string().min(1),
  oid: guid,
  natures: z.array(z.string()).default([]),
  /** App roles of the Keyserver app assigned to the user (emitted as `roles`). */
  appRoles: z.array(z.string().min(1)).default([]),
  /** Entra's `userType`: `Guest` is a B2B guest from a partner tenant (`acct` 1 in access tokens), else `acct` 0. */
  userType: z.enum(['Member', 'Guest']).default('Member'),
});

/** Schema of config/demo-tenant.json. Unknown fields (e.g. `$comment`) are ignored. */
export const demoTenantSchema = z
  .object({
    tenant: z.object({ id: guid, name: z.string().min(1) }),
    keyserverApp: z.object({
      clientId: guid,
      clientSecret: z.string().min(8),
      servicePrincipalOid: guid,
      applicationIdUri: z.string().regex(/^api:\/\/[^/\s]+$/, 'must look like api://<id>'),
      scope: z.string().regex(/^[A-Za-z0-9._-]+$/),
      appRoles: z.array(z.string().min(1)).default([]),
      /**
       * Optional claims of the registration's access tokens (Token configuration). `acct` is configured by default, as
       * docs/operations.md asks; `[]` plays a registration that forgot it (user tokens without `acct`).
       */
      accessTokenOptionalClaims: z.array(z.enum(['acct'])).default(['acct']),
      redirectUris: z.array(absoluteUrl).min(1),
      postLogoutRedirectUris: z.array(absoluteUrl).default([]),
    }),
    provisioningApp: z.object({
      clientId: guid,
      redirectUris: z.array(absoluteUrl).min(1),
      postLogoutRedirectUris: z.array(absoluteUrl).default([]),
    }),
    ciClients: z.array(ciClientSchema).default([]),
    users: z.array(userSchema).min(1),
    adoIssuer: z.object({
      /** Path of the emulated legacy Azure DevOps issuer (`https://vstoken.dev.azure.com/<org id>` in Azure). */
      path: z.string().regex(/^\/[A-Za-z0-9._~\-/]*[A-Za-z0-9._~-]$/, 'must be an absolute path without trailing slash'),
      /** The Azure DevOps organization id (the `/sc/<organization id>/` part of new-format subjects). */
      organizationId: guid,
      /** Service connections the OIDC-token endpoint issues for; the first is `mintAdoToken`'s default. */
      serviceConnections: z
        .array(
          z.object({
            id: guid,
            /** `entra` (Azure DevOps since 2025, the default) or `ado` (the legacy vstoken issuer and `sc://` subject). */
            issuerFormat: z.enum(['entra', 'ado']).default('entra'),
            /** Legacy format only: `sc://<organization>/<project>/<service connection>`. */
            subject: z.string().min(1).optional(),
          }),
        )
        .min(1),
      /** The single-connection shape used before 2026-12-07; refused so that an old file does not silently lose it. */
      serviceConnectionId: z.never({ message: 'replaced by serviceConnections: [{ id, issuerFormat, subject }]' }).optional(),
      subject: z.never({ message: 'replaced by serviceConnections[].subject' }).optional(),
    }),
  })
  .superRefine((t, ctx) => {
    const ids = [t.keyserverApp.clientId, t.provisioningApp.clientId, ...t.ciClients.map((c) => c.clientId)];
    if (new Set(ids).size !== ids.length) {
      ctx.addIssue({ code: 'custom', message: 'client ids must be unique' });
    }
    const known = new Set(t.keyserverApp.appRoles);
    for (const c of t.ciClients) {
      if (!c.clientSecret && c.federatedCredentials.length === 0 && c.certificates.length === 0) {
        ctx.addIssue({ code: 'custom', message: `ci client ${c.name} has no secret, certificate or federated credential` });
      }
      for (const r of c.appRoles) {
        if (!known.has(r)) ctx.addIssue({ code: 'custom', message: `ci client ${c.name}: unknown app role ${r}` });
      }
    }
    const connectionIds = new Set<string>();
    for (const [i, c] of t.adoIssuer.serviceConnections.entries()) {
      if (connectionIds.has(c.id.toLowerCase())) {
        ctx.addIssue({ code: 'custom', path: ['adoIssuer', 'serviceConnections', i, 'id'], message: `duplicate service connection ${c.id}` });
      }
      connectionIds.add(c.id.toLowerCase());
      if (c.issuerFormat === 'ado' && !c.subject) {
        ctx.addIssue({ code: 'custom', path: ['adoIssuer', 'serviceConnections', i, 'subject'], message: 'a legacy (ado) connection needs its sc:// subject' });
      }
      if (c.issuerFormat === 'entra' && c.subject) {
        ctx.addIssue({ code: 'custom', path: ['adoIssuer', 'serviceConnections', i, 'subject'], message: 'an entra connection\'s subject is derived (/eid1/…/sc/<organization id>/<id>); remove it' });
      }
    }
    const usernames = new Set<string>();
    for (const u of t.users) {
      const key = u.username.toLowerCase();
      if (usernames.has(key)) ctx.addIssue({ code: 'custom', message: `duplicate user ${u.username}` });
      usernames.add(key);
      for (const r of u.appRoles) {
        if (!known.has(r)) ctx.addIssue({ code: 'custom', message: `user ${u.username}: unknown app role ${r}` });
      }
    }
  });

/** The demo tenant as written in config/demo-tenant.json (input shape: defaults may be omitted). */
export type DemoTenant = z.input<typeof demoTenantSchema>;
/** The demo tenant after validation, with defaults applied. */
export type ResolvedTenant = z.output<typeof demoTenantSchema>;
export type TenantUser = ResolvedTenant['users'][number];
export type TenantCiClient = ResolvedTenant['ciClients'][number];

/** Validates an in-memory tenant; throws `tenant_file_invalid` with every problem listed. */
export function parseTenant(input: unknown, source = 'inline tenant'): ResolvedTenant {
  const result = demoTenantSchema.safeParse(input);
  if (!result.success) {
    const problems = result.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');
    throw new EntraEmulatorError(EntraEmulatorErrorCode.TenantFileInvalid, `${source}: ${problems}`);
  }
  return result.data;
}

/** Reads and validates a tenant file (JSON). */
export function loadTenantFile(path: string): ResolvedTenant {
  let raw: string;
  try {
    raw = readFileSync(path, 'utf8');
  } catch (cause) {
    throw new EntraEmulatorError(EntraEmulatorErrorCode.TenantFileUnreadable, `cannot read ${path}`, { cause });
  }
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch (cause) {
    throw new EntraEmulatorError(EntraEmulatorErrorCode.TenantFileInvalid, `${path} is not valid JSON`, { cause });
  }
  return parseTenant(json, path);
}
