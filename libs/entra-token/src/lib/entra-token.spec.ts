import { entraToken } from './entra-token';

describe('entraToken', () => {
  it('should work', () => {
    expect(entraToken()).toEqual('entra-token');
  })
})
