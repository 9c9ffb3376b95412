// Summary of a V8 .cpuprofile (node --cpu-prof): top frames by self time and by inclusive time, and self time per
// package, so docs/benchmarks.md can say where the API's CPU goes under load.

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
  children?: number[];
}

export interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

export interface ProfileRow {
  frame: string;
  ms: number;
  percent: number;
}

export interface ProfileSummary {
  /** Sampled time excluding (idle). */
  busyMs: number;
  totalMs: number;
  self: ProfileRow[];
  inclusive: ProfileRow[];
  /** Self time grouped by package (node_modules/<pkg>), node: internals, our code (apps/, libs/), or V8 (GC, program). */
  byPackage: ProfileRow[];
}

/** node_modules/@scope/name or node_modules/name of a script URL; 'node:' internals; our dist bundle. */
export function packageOf(url: string, fn: string): string {
  if (!url) return fn.startsWith('(') ? fn : '(native)';
  const m = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (m) return m[1];
  if (url.startsWith('node:')) return 'node: internals';
  if (url.includes('/dist/')) return 'keyserver (dist bundle)';
  return url.replace(/^file:\/\//, '');
}

function frameName(n: ProfileNode): string {
  const { functionName, url, lineNumber } = n.callFrame;
  const short = url.replace(/^file:\/\//, '').replace(/.*node_modules\//, '');
  return `${functionName || '(anonymous)'} ${short ? `${short.replace(/^.*\/dist\//, 'dist/')}:${lineNumber + 1}` : ''}`.trim();
}

/**
 * `window`: only samples between these many microseconds before the profile's end (the load cell), so start-up and
 * set-up do not count.
 */
export function summarizeProfile(p: CpuProfile, top = 25, window?: { fromEndUs: number; toEndUs: number }): ProfileSummary {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const self = new Map<string, number>();
  const incl = new Map<string, number>();
  const pkg = new Map<string, number>();
  let total = 0;
  let idle = 0;
  let at = p.startTime;
  for (let i = 0; i < p.samples.length; i++) {
    at += p.timeDeltas[i] ?? 0;
    if (window && (at < p.endTime - window.fromEndUs || at > p.endTime - window.toEndUs)) continue;
    const dt = (p.timeDeltas[i + 1] ?? p.timeDeltas[i] ?? 0) / 1000;
    const node = byId.get(p.samples[i]);
    if (!node) continue;
    total += dt;
    if (node.callFrame.functionName === '(idle)') {
      idle += dt;
      continue;
    }
    const name = frameName(node);
    self.set(name, (self.get(name) ?? 0) + dt);
    const pk = packageOf(node.callFrame.url, node.callFrame.functionName);
    pkg.set(pk, (pkg.get(pk) ?? 0) + dt);
    const seen = new Set<string>();
    for (let id: number | undefined = node.id; id !== undefined; id = parent.get(id)) {
      const f = byId.get(id);
      if (!f) break;
      const fname = frameName(f);
      if (fname === '(root)' || seen.has(fname)) continue;
      seen.add(fname);
      incl.set(fname, (incl.get(fname) ?? 0) + dt);
    }
  }
  const busy = total - idle;
  const rows = (m: Map<string, number>) =>
    [...m.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([frame, ms]) => ({ frame, ms: Math.round(ms), percent: Math.round((1000 * ms) / busy) / 10 }));
  return { busyMs: Math.round(busy), totalMs: Math.round(total), self: rows(self), inclusive: rows(incl), byPackage: rows(pkg) };
}
