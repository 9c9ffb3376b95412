import { KEY_GRANTS, NATURES, SUBJECT_KINDS } from '@keyserver/api-contract';
import { KeyPermission, Nature, SubjectKind } from '../generated/prisma/enums';

// The access vocabulary is declared once (@keyserver/api-contract); the database enums must hold the same words.
describe('database access vocabulary', () => {
  it.each([
    ['Nature', Object.values(Nature), NATURES],
    ['KeyPermission', Object.values(KeyPermission), KEY_GRANTS],
    ['SubjectKind', Object.values(SubjectKind), SUBJECT_KINDS],
  ] as const)('the %s enum equals the contract', (_n, db, contract) => {
    expect([...db].sort()).toEqual([...contract].sort());
  });
});
