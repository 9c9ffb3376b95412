export function errors(): string {
  return 'errors';
}
