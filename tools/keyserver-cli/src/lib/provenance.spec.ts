import { CreateOperationRequest } from '@keyserver/api-contract';
import { ciProvenance } from './provenance';

describe('ciProvenance', () => {
  const ado = {
    TF_BUILD: 'True',
    BUILD_REPOSITORY_NAME: 'gadget-firmware',
    BUILD_DEFINITIONNAME: 'release',
    BUILD_BUILDNUMBER: '20261205.3',
    BUILD_BUILDID: '42',
    BUILD_SOURCEVERSION: '0A1B2C3D4E5F60718293A4B5C6D7E8F901234567',
    SYSTEM_COLLECTIONURI: 'https://dev.azure.com/contoso/',
    SYSTEM_TEAMPROJECT: 'Devices Team',
  };
  const gha = {
    GITHUB_ACTIONS: 'true',
    GITHUB_REPOSITORY: 'contoso/gadget-firmware',
    GITHUB_WORKFLOW: 'release',
    GITHUB_RUN_ID: '987654',
    GITHUB_RUN_ATTEMPT: '2',
    GITHUB_SHA: 'abcdef0123456789abcdef0123456789abcdef01',
    GITHUB_SERVER_URL: 'https://github.com',
  };

  it.each([
    [
      'ok Azure Pipelines',
      ado,
      { project: 'gadget-firmware', pipeline: 'release', run: '20261205.3', commit: '0a1b2c3d4e5f60718293a4b5c6d7e8f901234567', url: 'https://dev.azure.com/contoso/Devices%20Team/_build/results?buildId=42' },
    ],
    ['ok GitHub Actions', gha, { project: 'contoso/gadget-firmware', pipeline: 'release', run: '987654.2', commit: gha.GITHUB_SHA, url: 'https://github.com/contoso/gadget-firmware/actions/runs/987654' }],
    ['ok outside CI: nothing', {}, undefined],
    ['ok a commit that is not hex is left out', { ...gha, GITHUB_SHA: 'main' }, expect.not.objectContaining({ commit: expect.anything() })],
    ['ok a plain-http server gives no url', { ...gha, GITHUB_SERVER_URL: 'http://ghe.local' }, expect.not.objectContaining({ url: expect.anything() })],
    ['ok control characters are dropped', { ...gha, GITHUB_WORKFLOW: 'rel\u0007ease\n' }, expect.objectContaining({ pipeline: 'release' })],
    ['ok a huge name is cut to 200', { ...gha, GITHUB_WORKFLOW: 'x'.repeat(5000) }, expect.objectContaining({ pipeline: 'x'.repeat(200) })],
  ])('%s', (_name, env, expected) => {
    expect(ciProvenance(env)).toEqual(expected);
  });

  it.each([['Azure Pipelines', ado], ['GitHub Actions', gha], ['hostile values', { ...gha, GITHUB_WORKFLOW: ' \u0085\u0000 ', GITHUB_SHA: 'zz', GITHUB_SERVER_URL: 'javascript:alert(1)//' }]])(
    'ok what it declares from %s is what the API accepts',
    (_name, env) => {
      const body = { description: 'ci provenance', validFrom: '2026-12-05T10:00:00Z', validTo: '2026-12-05T11:00:00Z', keys: [{ keyid: 'k', usages: 1 }], provenance: ciProvenance(env) };
      expect(CreateOperationRequest.safeParse(body).success).toBe(true);
    },
  );
});
