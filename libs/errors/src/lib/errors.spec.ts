import { errors } from './errors';

describe('errors', () => {
  it('should work', () => {
    expect(errors()).toEqual('errors');
  })
})
