export function pki(): string {
  return 'pki';
}
