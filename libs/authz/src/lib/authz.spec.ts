import { authz } from './authz';

describe('authz', () => {
  it('should work', () => {
    expect(authz()).toEqual('authz');
  })
})
