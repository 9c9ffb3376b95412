export function entraToken(): string {
  return 'entra-token';
}
