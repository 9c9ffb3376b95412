export function entraEmulatorCore(): string {
  return 'entra-emulator-core';
}
