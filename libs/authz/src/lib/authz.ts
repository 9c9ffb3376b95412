export function authz(): string {
  return 'authz';
}
