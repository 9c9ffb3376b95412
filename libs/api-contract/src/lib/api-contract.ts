export function apiContract(): string {
  return 'api-contract';
}
