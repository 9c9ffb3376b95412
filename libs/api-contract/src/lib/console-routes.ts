export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

/**
 * The only Keyserver API routes the admin console may reach through the keyclient: administration and approval.
 * Signing orders, firmware and certificate issuance are deliberately absent (the BFF flow must never be able to sign
 * or issue; see the integration guide). `:id` stands for one path segment. Declared once: the keyclient's proxy
 * allows exactly these, each a route of the API (docs/openapi.json) with no static API route hiding behind an `:id`
 * (keyclient proxy-routes.spec.ts), and the console has plain words for every problem code they can answer
 * (admin-spa problem-messages.spec.ts).
 */
export const CONSOLE_ROUTES: ReadonlyArray<readonly [HttpMethod, string]> = [
  ['GET', '/api/v1/me'],
  ['GET', '/api/keys'],
  ['GET', '/api/v1/keys'],
  ['GET', '/api/v1/keys/:id'],
  // Key administration happens inside an administrative session (four eyes), never signing with them.
  ['POST', '/api/v1/keys'],
  ['PATCH', '/api/v1/keys/:id'],
  ['POST', '/api/v1/keys/:id/revocation'],
  // The key lifecycle (ADR 0020): the ROOT ceremony, the CSR of a key awaiting its external certificate, its
  // import or its cancellation (ADR 0042), versions, renewal, rotation, retirement, destruction, the renewed external
  // chain of an imported ROOT (ADR 0020 addendum). None of them signs data or issues device certificates.
  ['POST', '/api/v1/keys/root-ceremony'],
  ['GET', '/api/v1/keys/:id/csr'],
  ['POST', '/api/v1/keys/:id/csr/cancellation'],
  ['POST', '/api/v1/keys/:id/certificate'],
  ['POST', '/api/v1/keys/:id/external-chain'],
  ['GET', '/api/v1/keys/:id/versions'],
  ['POST', '/api/v1/keys/:id/renewal'],
  ['POST', '/api/v1/keys/:id/rotation'],
  ['POST', '/api/v1/keys/:id/retirement'],
  ['POST', '/api/v1/keys/:id/destruction'],
  ['GET', '/api/v1/operations'],
  ['POST', '/api/v1/operations'],
  ['GET', '/api/v1/operations/:id'],
  ['POST', '/api/v1/operations/:id/approvals'],
  ['POST', '/api/v1/operations/:id/rejection'],
  ['POST', '/api/v1/operations/:id/cancellation'],
  ['GET', '/api/v1/admin-sessions'],
  ['POST', '/api/v1/admin-sessions'],
  ['GET', '/api/v1/admin-sessions/:id'],
  ['POST', '/api/v1/admin-sessions/:id/authorizations'],
  ['POST', '/api/v1/admin-sessions/:id/closure'],
  ['GET', '/api/v1/subjects'],
  ['POST', '/api/v1/subjects'],
  ['GET', '/api/v1/subjects/:id'],
  ['PATCH', '/api/v1/subjects/:id'],
  ['GET', '/api/v1/unknown-principals'],
  ['GET', '/api/v1/roles'],
  ['POST', '/api/v1/roles'],
  ['PATCH', '/api/v1/roles/:id'],
  ['GET', '/api/v1/audit'],
  ['GET', '/api/v1/audit/verify'],
  ['GET', '/api/v1/audit/export'],
  ['GET', '/api/v1/certificates'],
  ['POST', '/api/v1/certificates/:id/revocation'],
  ['GET', '/api/v1/crl/:id'],
];