/** What `ksctl operations create` declares about the CI run it runs in (the API's `provenance`; shown to approvers). */
export interface Provenance {
  project?: string;
  pipeline?: string;
  run?: string;
  commit?: string;
  url?: string;
}

type Env = Record<string, string | undefined>;

/** One line of text as the API accepts it: control characters dropped, trimmed, at most 200 characters. */
function text(v: string | undefined): string | undefined {
  // eslint-disable-next-line no-control-regex
  const t = (v ?? '').replace(/[\u0000-\u001f\u007f-\u009f]/g, '').trim().slice(0, 200).trim();
  return t === '' ? undefined : t;
}

function commit(v: string | undefined): string | undefined {
  return v && /^[0-9a-fA-F]{7,64}$/.test(v) ? v.toLowerCase() : undefined;
}

function httpsUrl(v: string): string | undefined {
  try {
    const u = new URL(v);
    return u.protocol === 'https:' && v.length <= 2048 ? u.toString() : undefined;
  } catch {
    return undefined;
  }
}

function compact(p: Provenance): Provenance | undefined {
  const out = Object.fromEntries(Object.entries(p).filter(([, v]) => v !== undefined)) as Provenance;
  return Object.keys(out).length ? out : undefined;
}

/**
 * The provenance of the CI run ksctl runs in, from the variables Azure Pipelines and GitHub Actions set;
 * undefined outside CI. Values the API would refuse are dropped, never sent.
 */
export function ciProvenance(env: Env): Provenance | undefined {
  if (env['TF_BUILD'] === 'True' || env['BUILD_BUILDID']) {
    const base = env['SYSTEM_COLLECTIONURI'] && env['SYSTEM_TEAMPROJECT'] && env['BUILD_BUILDID'];
    return compact({
      project: text(env['BUILD_REPOSITORY_NAME'] ?? env['SYSTEM_TEAMPROJECT']),
      pipeline: text(env['BUILD_DEFINITIONNAME']),
      run: text(env['BUILD_BUILDNUMBER'] ?? env['BUILD_BUILDID']),
      commit: commit(env['BUILD_SOURCEVERSION']),
      url: base
        ? httpsUrl(`${env['SYSTEM_COLLECTIONURI']?.replace(/\/+$/, '')}/${encodeURIComponent(env['SYSTEM_TEAMPROJECT'] ?? '')}/_build/results?buildId=${encodeURIComponent(env['BUILD_BUILDID'] ?? '')}`)
        : undefined,
    });
  }
  if (env['GITHUB_ACTIONS'] === 'true') {
    const server = env['GITHUB_SERVER_URL'];
    const repo = env['GITHUB_REPOSITORY'];
    const runId = env['GITHUB_RUN_ID'];
    return compact({
      project: text(repo),
      pipeline: text(env['GITHUB_WORKFLOW']),
      run: text(runId && env['GITHUB_RUN_ATTEMPT'] ? `${runId}.${env['GITHUB_RUN_ATTEMPT']}` : runId),
      commit: commit(env['GITHUB_SHA']),
      url: server && repo && runId ? httpsUrl(`${server.replace(/\/+$/, '')}/${repo}/actions/runs/${encodeURIComponent(runId)}`) : undefined,
    });
  }
  return undefined;
}
