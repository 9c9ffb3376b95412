import { pki } from './pki';

describe('pki', () => {
  it('should work', () => {
    expect(pki()).toEqual('pki');
  })
})
