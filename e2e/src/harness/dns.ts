// Cluster DNS stand-in: the harness has no DNS server, so the names Kubernetes would publish for
// Services and StatefulSet pods (`<svc>.<ns>.svc.<domain>`, `<pod>.<svc>.<ns>.svc.<domain>`) are
// resolved from the API objects, and the process runtime rewrites them to addresses in a
// container's args and env when it starts the container. A rewritten address is not re-resolved
// later; StatefulSet pods keep their address across restarts (see Controllers' sticky pod IPs),
// so a resolved pod name stays valid the way a DNS name would. Test infrastructure only.
import type { Api } from './api.js';
import type { KObject } from './util.js';

export const DEFAULT_CLUSTER_DOMAIN = 'cluster.local';

const ready = (p: KObject) => ((p.status as { conditions?: { type: string; status: string }[] } | undefined)?.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True');
const podIP = (p: KObject) => (p.status as { podIP?: string } | undefined)?.podIP;

/**
 * The address a cluster DNS name stands for, or undefined when nothing answers to it (yet):
 * a Service's clusterIP (for a headless Service, the address of a ready selected pod), or the
 * address of the pod with that hostname and subdomain. Accepts the name with or without the
 * cluster domain and a trailing dot.
 */
export function resolveClusterName(api: Api, name: string, clusterDomain = DEFAULT_CLUSTER_DOMAIN): string | undefined {
  let host = name.toLowerCase().replace(/\.$/, '');
  if (host.endsWith(`.${clusterDomain}`)) host = host.slice(0, -clusterDomain.length - 1);
  const parts = host.split('.');
  if (parts.at(-1) !== 'svc' || parts.length < 3 || parts.length > 4) return undefined;
  const [svcName, ns] = parts.length === 3 ? [parts[0]!, parts[1]!] : [parts[1]!, parts[2]!];
  const podsT = api.type('', 'v1', 'pods');
  const servicesT = api.type('', 'v1', 'services');
  if (!podsT || !servicesT) return undefined;
  if (parts.length === 4) {
    const hostname = parts[0]!;
    const pod = api
      .list(podsT, ns)
      .find((p) => !p.metadata.deletionTimestamp && (p.spec as { hostname?: string; subdomain?: string }).hostname === hostname && (p.spec as { subdomain?: string }).subdomain === svcName);
    return pod ? podIP(pod) : undefined;
  }
  const svc = api.tryGet(servicesT, ns, svcName);
  if (!svc) return undefined;
  const spec = svc.spec as { clusterIP?: string; selector?: Record<string, string> };
  if (spec.clusterIP && spec.clusterIP !== 'None') return spec.clusterIP;
  const sel = spec.selector ?? {};
  const pods = api.list(podsT, ns).filter((p) => !p.metadata.deletionTimestamp && podIP(p) && Object.entries(sel).every(([k, v]) => p.metadata.labels?.[k] === v));
  const pod = pods.find(ready) ?? pods[0];
  return pod ? podIP(pod) : undefined;
}

/** Matches `<a>.<b>.svc.<domain>` and `<a>.<b>.<c>.svc.<domain>` inside a longer string. */
function namePattern(clusterDomain: string): RegExp {
  const label = '[a-z0-9](?:[-a-z0-9]*[a-z0-9])?';
  return new RegExp(`(?<![-a-z0-9.])(?:${label}\\.){2,3}svc\\.${clusterDomain.replace(/\./g, '\\.')}\\.?(?![-a-z0-9])`, 'gi');
}

export interface RewriteResult {
  text: string;
  /** names that matched the pattern but resolve to nothing (yet) */
  unresolved: string[];
}

/** Replaces every cluster DNS name in text with the address it resolves to. */
export function rewriteClusterNames(api: Api, text: string, clusterDomain = DEFAULT_CLUSTER_DOMAIN): RewriteResult {
  const unresolved: string[] = [];
  const out = text.replace(namePattern(clusterDomain), (name) => {
    const ip = resolveClusterName(api, name, clusterDomain);
    if (!ip) unresolved.push(name);
    return ip ?? name;
  });
  return { text: out, unresolved };
}
