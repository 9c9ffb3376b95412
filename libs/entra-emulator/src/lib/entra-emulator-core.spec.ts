import { entraEmulatorCore } from './entra-emulator-core';

describe('entraEmulatorCore', () => {
  it('should work', () => {
    expect(entraEmulatorCore()).toEqual('entra-emulator-core');
  })
})
