export function dataAccess(): string {
  return 'data-access';
}
