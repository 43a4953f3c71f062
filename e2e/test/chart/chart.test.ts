// helm lint + helm template over the defaults and variants; every rendered built-in object is
// validated against the Kubernetes schema (kubernetes-models), and the operator Deployment carries
// the contract the operator reads (operator/src/config.ts).
import { CHART_DIR, NAMESPACE, RELEASE, findAll, findOne, helm, lint, render, type KubeObject, type Values } from '../../src/chart/helm.js';
import { isBuiltin, validateBuiltin } from '../../src/chart/validate.js';
import { operatorModule, type OperatorConfigModule } from './operator-source.js';

type Container = {
  name: string;
  image: string;
  env: Array<{ name: string; value?: string; valueFrom?: unknown }>;
  ports: Array<{ name: string; containerPort: number }>;
  livenessProbe: { httpGet: { path: string; port: string | number } };
  readinessProbe: { httpGet: { path: string; port: string | number } };
  securityContext: Record<string, unknown>;
  resources: { requests?: Record<string, string>; limits?: Record<string, string> };
};
type DeploymentSpec = {
  replicas: number;
  strategy: { type: string };
  selector: { matchLabels: Record<string, string> };
  template: { metadata: { labels: Record<string, string> }; spec: { serviceAccountName: string; securityContext: Record<string, unknown>; containers: Container[] } };
};

const OPERATOR = `${RELEASE}-walkeeper-operator`;

function deployment(objs: KubeObject[]): { spec: DeploymentSpec; container: Container; env: Record<string, string | undefined> } {
  const d = findOne(objs, 'Deployment', OPERATOR);
  const spec = d.spec as DeploymentSpec;
  const container = spec.template.spec.containers[0]!;
  return { spec, container, env: Object.fromEntries(container.env.map((e) => [e.name, e.value])) };
}

const variants: Array<[string, Values]> = [
  ['defaults', {}],
  ['watchAllNamespaces', { watchAllNamespaces: true }],
  ['another watched namespace', { watchNamespace: 'apps' }],
  ['two replicas', { operator: { replicas: 2 } }],
  ['serviceMonitor on', { metrics: { serviceMonitor: { enabled: true, labels: { release: 'prom' } } } }],
  ['default Safekeeper', { safekeeper: { create: true, replicas: 5, storage: { size: '20Gi', storageClassName: 'fast' } } }],
  ['no CRDs, no RBAC, existing ServiceAccount', { crds: { create: false }, rbac: { create: false }, serviceAccount: { create: false, name: 'ops' } }],
  ['pinned digest and placement', { operator: { image: { digest: `sha256:${'a'.repeat(64)}` }, nodeSelector: { 'kubernetes.io/os': 'linux' }, tolerations: [{ key: 'k', operator: 'Exists' }], extraEnv: [{ name: 'X', value: 'y' }] } }],
];

describe.each(variants)('%s', (_name, values) => {
  let objs: KubeObject[];
  beforeAll(() => {
    objs = render(values);
  });

  test('helm lint --strict passes', () => {
    const r = lint(values);
    expect(`${r.stdout}${r.stderr}`).toMatch(/0 chart\(s\) failed/);
    expect(r.code).toBe(0);
  });

  test('every built-in object is valid against the Kubernetes schema', () => {
    const builtins = objs.filter(isBuiltin);
    expect(builtins.length).toBeGreaterThan(0);
    for (const o of builtins) expect(() => validateBuiltin(o)).not.toThrow();
    // Anything else is one of ours or the optional ServiceMonitor, never an unknown kind.
    const others = objs.filter((o) => !isBuiltin(o)).map((o) => `${o.apiVersion}/${o.kind}`);
    for (const k of others) expect(['walkeeper.io/v1alpha1/Safekeeper', 'monitoring.coreos.com/v1/ServiceMonitor']).toContain(k);
  });

  test('object names are unique per kind and namespace, and every namespaced object has a namespace', () => {
    const keys = objs.map((o) => `${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`);
    expect(new Set(keys).size).toBe(keys.length);
    const clusterScoped = new Set(['CustomResourceDefinition', 'ClusterRole', 'ClusterRoleBinding']);
    for (const o of objs) {
      if (clusterScoped.has(o.kind)) expect(o.metadata.namespace).toBeUndefined();
      else expect(o.metadata.namespace).toBeTruthy();
    }
  });

  test('the operator Deployment is hardened and probed', () => {
    const { spec, container } = deployment(objs);
    const pod = spec.template.spec;
    expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } });
    expect(container.securityContext).toMatchObject({ allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, runAsNonRoot: true, capabilities: { drop: ['ALL'] } });
    expect(container.resources.requests).toBeDefined();
    expect(container.resources.limits?.memory).toBeDefined();
    const ports = Object.fromEntries(container.ports.map((p) => [p.name, p.containerPort]));
    expect(ports).toEqual({ metrics: 8080, health: 8081 });
    expect(container.livenessProbe.httpGet).toEqual({ path: '/healthz', port: 'health' });
    expect(container.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'health' });
    // The selector is a subset of the pod labels, and is what the metrics Service selects.
    expect(spec.template.metadata.labels).toMatchObject(spec.selector.matchLabels);
    const svc = objs.find((o) => o.kind === 'Service');
    if (svc) expect((svc.spec as { selector: Record<string, string> }).selector).toEqual(spec.selector.matchLabels);
  });
});

describe('operator configuration (env names from operator/src/config.ts)', () => {
  test('defaults: one namespace (the release namespace), one replica, no leader election, Recreate', async () => {
    const { HELP, parseConfig } = await operatorModule<OperatorConfigModule>('config.ts');
    const { spec, container, env } = deployment(render());
    // Every env name the chart sets is one the operator documents (or downward-API identity).
    for (const name of Object.keys(env)) if (!['POD_NAME', 'POD_NAMESPACE'].includes(name)) expect(HELP).toContain(`(${name})`);
    expect(env).toMatchObject({
      WATCH_NAMESPACE: NAMESPACE,
      LEADER_ELECT: 'false',
      METRICS_ADDR: '0.0.0.0:8080',
      HEALTH_ADDR: '0.0.0.0:8081',
      LOG_LEVEL: 'info',
      LEASE_NAMESPACE: NAMESPACE,
    });
    expect(spec.replicas).toBe(1);
    expect(spec.strategy.type).toBe('Recreate'); // never two unelected operators at once
    expect(container.image).toBe('ghcr.io/walkeeper/walkeeper-operator:0.1.0');
    const cfg = parseConfig([], env as NodeJS.ProcessEnv);
    expect(cfg).toMatchObject({ namespace: NAMESPACE, leaderElect: false, metricsAddr: '0.0.0.0:8080', healthAddr: '0.0.0.0:8081', leaseNamespace: NAMESPACE });
  });

  test('replicas 2 turns leader election on and allows a rolling update', () => {
    const { spec, env } = deployment(render({ operator: { replicas: 2 } }));
    expect(spec.replicas).toBe(2);
    expect(env.LEADER_ELECT).toBe('true');
    expect(spec.strategy.type).toBe('RollingUpdate');
  });

  test('leaderElection.enabled with one replica also turns it on', () => {
    expect(deployment(render({ operator: { leaderElection: { enabled: true } } })).env.LEADER_ELECT).toBe('true');
  });

  test('watchAllNamespaces clears WATCH_NAMESPACE; watchNamespace sets it', () => {
    expect(deployment(render({ watchAllNamespaces: true })).env.WATCH_NAMESPACE).toBe('');
    expect(deployment(render({ watchNamespace: 'apps' })).env.WATCH_NAMESPACE).toBe('apps');
  });

  test('image tag, digest and log level are applied', () => {
    expect(deployment(render({ operator: { image: { tag: '0.2.0' } } })).container.image).toBe('ghcr.io/walkeeper/walkeeper-operator:0.2.0');
    const digest = `sha256:${'b'.repeat(64)}`;
    expect(deployment(render({ operator: { image: { digest } } })).container.image).toBe(`ghcr.io/walkeeper/walkeeper-operator@${digest}`);
    expect(deployment(render({ operator: { logLevel: 'debug' } })).env.LOG_LEVEL).toBe('debug');
  });
});

describe('metrics', () => {
  test('a metrics Service on 8080, and no ServiceMonitor by default', () => {
    const objs = render();
    const svc = findOne(objs, 'Service', `${OPERATOR}-metrics`);
    expect((svc.spec as { ports: unknown[] }).ports).toEqual([{ name: 'metrics', port: 8080, targetPort: 'metrics', protocol: 'TCP' }]);
    expect(findAll(objs, 'ServiceMonitor')).toEqual([]);
  });

  test('metrics.serviceMonitor.enabled renders a ServiceMonitor for the metrics Service', () => {
    const objs = render({ metrics: { serviceMonitor: { enabled: true, labels: { release: 'prom' } } } });
    const sm = findOne(objs, 'ServiceMonitor');
    const svc = findOne(objs, 'Service', `${OPERATOR}-metrics`);
    const smSpec = sm.spec as { selector: { matchLabels: Record<string, string> }; endpoints: Array<{ port: string; path: string; interval: string }>; namespaceSelector: { matchNames: string[] } };
    expect(sm.apiVersion).toBe('monitoring.coreos.com/v1');
    expect(sm.metadata.labels).toMatchObject({ release: 'prom' });
    expect(svc.metadata.labels).toMatchObject(smSpec.selector.matchLabels);
    expect(smSpec.endpoints).toEqual([{ port: 'metrics', path: '/metrics', interval: '30s', scrapeTimeout: '10s' }]);
    expect(smSpec.namespaceSelector.matchNames).toEqual([NAMESPACE]);
  });

  test('a ServiceMonitor without the metrics Service is refused', () => {
    const r = helm(['template', RELEASE, CHART_DIR, '--set', 'metrics.serviceMonitor.enabled=true', '--set', 'metrics.service.enabled=false']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/metrics\.serviceMonitor\.enabled needs metrics\.service\.enabled/);
  });
});

test('NOTES.txt tells the user the next commands', () => {
  const r = helm(['install', RELEASE, CHART_DIR, '--namespace', NAMESPACE, '--dry-run=client']);
  expect(r.code).toBe(0);
  const notes = r.stdout.slice(r.stdout.indexOf('NOTES:'));
  expect(notes).toContain(`kubectl -n ${NAMESPACE} apply -f examples/safekeeper.yaml`);
  expect(notes).toContain(`kubectl -n ${NAMESPACE} apply -f examples/tenant.yaml`);
  expect(notes).toContain(`kubectl -n ${NAMESPACE} wait --for=condition=Ready tenant/demo`);
  expect(notes).toMatch(/psql /);
  expect(notes).toContain('demo-credentials'); // the Secret the operator writes for tenant "demo"
  const withSk = helm(['install', RELEASE, CHART_DIR, '--namespace', NAMESPACE, '--dry-run=client', '--set', 'safekeeper.create=true']);
  expect(withSk.stdout).not.toContain('apply -f examples/safekeeper.yaml');
  expect(withSk.stdout).toContain('apply -f examples/tenant.yaml');
});

test('the schema check is real: a broken Deployment and a broken Role are refused', () => {
  const objs = render();
  const d = structuredClone(findOne(objs, 'Deployment'));
  (d.spec as { replicas: unknown }).replicas = 'two';
  expect(() => validateBuiltin(d)).toThrow(/replicas/);
  const d2 = structuredClone(findOne(objs, 'Deployment'));
  delete (d2.spec as { selector?: unknown }).selector;
  expect(() => validateBuiltin(d2)).toThrow(/selector/);
  const role = structuredClone(findOne(objs, 'Role', OPERATOR));
  (role.rules as Array<{ verbs: unknown }>)[0]!.verbs = 'get';
  expect(() => validateBuiltin(role)).toThrow(/verbs/);
});

test('a long release name still gives valid object names (Services and Deployments at most 63 characters)', () => {
  const release = 'a-very-long-release-name-for-walkeeper-production-eu1'; // 53, helm's maximum
  const objs = render({}, { release });
  for (const o of objs) {
    if (['Service', 'Deployment', 'ServiceAccount'].includes(o.kind)) expect(o.metadata.name.length).toBeLessThanOrEqual(63);
    expect(o.metadata.name).toMatch(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/);
  }
  for (const o of objs.filter(isBuiltin)) expect(() => validateBuiltin(o)).not.toThrow();
});
