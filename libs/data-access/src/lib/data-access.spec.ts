import { dataAccess } from './data-access';

describe('dataAccess', () => {
  it('should work', () => {
    expect(dataAccess()).toEqual('data-access');
  })
})
