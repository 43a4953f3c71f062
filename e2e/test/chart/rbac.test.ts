// RBAC: namespaced Role by default (in the watched namespace), ClusterRole only when watching all
// namespaces; least privilege (no wildcards, no verbs beyond what the operator does); and every
// kind in the operator's client table is covered.
import { NAMESPACE, RELEASE, findAll, findOne, render, type KubeObject } from '../../src/chart/helm.js';
import { operatorModule, type OperatorKubeModule } from './operator-source.js';

type Rule = { apiGroups: string[]; resources: string[]; verbs: string[]; resourceNames?: string[] };
const OPERATOR = `${RELEASE}-walkeeper-operator`;
const SA = OPERATOR;

const rules = (o: KubeObject) => o.rules as Rule[];

/** The verbs granted on group/resource by a set of rules (optionally only rules without resourceNames). */
function verbs(rs: Rule[], group: string, resource: string, opts: { unrestricted?: boolean } = {}): Set<string> {
  const out = new Set<string>();
  for (const r of rs) {
    if (opts.unrestricted && r.resourceNames) continue;
    if (r.apiGroups.includes(group) && r.resources.includes(resource)) r.verbs.forEach((v) => out.add(v));
  }
  return out;
}

function binding(objs: KubeObject[], kind: string, name: string) {
  return findOne(objs, kind, name) as KubeObject & { roleRef: { kind: string; name: string }; subjects: Array<{ kind: string; name: string; namespace: string }> };
}

/** What the operator is allowed to do, per (group, resource): the upper bound for least privilege. */
const ALLOWED: Record<string, string[]> = {
  'walkeeper.io/safekeepers': ['get', 'list', 'watch', 'update', 'patch'],
  'walkeeper.io/tenants': ['get', 'list', 'watch', 'update', 'patch'],
  'walkeeper.io/safekeepers/status': ['get', 'update', 'patch'],
  'walkeeper.io/tenants/status': ['get', 'update', 'patch'],
  'walkeeper.io/safekeepers/finalizers': ['update'],
  'walkeeper.io/tenants/finalizers': ['update'],
  'apps/statefulsets': ['get', 'list', 'watch', 'create', 'update', 'patch', 'delete'],
  '/services': ['get', 'list', 'watch', 'create', 'update', 'patch', 'delete'],
  '/configmaps': ['get', 'list', 'watch', 'create', 'update', 'patch', 'delete'],
  '/secrets': ['get', 'list', 'watch', 'create', 'update', 'patch', 'delete'],
  '/pods': ['get', 'list', 'watch', 'delete'],
  '/persistentvolumeclaims': ['get', 'list', 'watch', 'delete'],
  'policy/poddisruptionbudgets': ['get', 'list', 'watch', 'create', 'update', 'patch', 'delete'],
  '/events': ['create', 'patch'],
  'coordination.k8s.io/leases': ['get', 'create', 'update', 'patch'],
};

function assertLeastPrivilege(o: KubeObject) {
  for (const r of rules(o)) {
    for (const field of ['apiGroups', 'resources', 'verbs'] as const) expect(r[field]).not.toContain('*');
    expect(r.verbs).not.toContain('escalate');
    expect(r.verbs).not.toContain('bind');
    expect(r.verbs).not.toContain('impersonate');
    expect(r.verbs).not.toContain('deletecollection');
    for (const g of r.apiGroups) {
      for (const res of r.resources) {
        const allowed = ALLOWED[`${g}/${res}`];
        expect({ rule: `${g}/${res}`, known: allowed !== undefined }).toEqual({ rule: `${g}/${res}`, known: true });
        for (const v of r.verbs) expect({ rule: `${g}/${res}`, verb: v, allowed: allowed!.includes(v) }).toEqual({ rule: `${g}/${res}`, verb: v, allowed: true });
      }
    }
  }
}

describe('default: one namespace (the release namespace)', () => {
  const objs = render();

  test('a Role and RoleBinding in the release namespace, no cluster-wide RBAC', () => {
    expect(findAll(objs, 'ClusterRole')).toEqual([]);
    expect(findAll(objs, 'ClusterRoleBinding')).toEqual([]);
    const role = findOne(objs, 'Role', OPERATOR);
    expect(role.metadata.namespace).toBe(NAMESPACE);
    const rb = binding(objs, 'RoleBinding', OPERATOR);
    expect(rb.metadata.namespace).toBe(NAMESPACE);
    expect(rb.roleRef).toEqual({ apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: OPERATOR });
    expect(rb.subjects).toEqual([{ kind: 'ServiceAccount', name: SA, namespace: NAMESPACE }]);
    expect(findOne(objs, 'ServiceAccount', SA).metadata.namespace).toBe(NAMESPACE);
    expect((findOne(objs, 'Deployment', OPERATOR).spec as { template: { spec: { serviceAccountName: string } } }).template.spec.serviceAccountName).toBe(SA);
  });

  test('least privilege: no wildcards, no verb beyond what the operator needs', () => {
    for (const kind of ['Role', 'ClusterRole']) for (const o of findAll(objs, kind)) assertLeastPrivilege(o);
  });

  test('no Lease permissions without leader election', () => {
    expect(findAll(objs, 'Role').map((r) => r.metadata.name)).toEqual([OPERATOR]);
    expect(verbs(rules(findOne(objs, 'Role', OPERATOR)), 'coordination.k8s.io', 'leases').size).toBe(0);
  });

  test("covers every kind in the operator's client table", async () => {
    const { kinds } = await operatorModule<OperatorKubeModule>('runtime/kube.ts');
    const role = rules(findOne(objs, 'Role', OPERATOR));
    for (const k of Object.values(kinds)) {
      if (k.kind === 'Lease') continue; // leader-election Role, below
      const group = k.apiVersion.includes('/') ? k.apiVersion.split('/')[0]! : '';
      const granted = verbs(role, group, k.plural, { unrestricted: true });
      const need = k.kind === 'Event' ? ['create'] : ['get', 'list', 'watch'];
      for (const v of need) expect({ kind: k.kind, verb: v, granted: granted.has(v) }).toEqual({ kind: k.kind, verb: v, granted: true });
    }
    // Status is written through the status subresource; Tenant finalizers through a patch.
    for (const r of ['safekeepers/status', 'tenants/status']) expect(verbs(role, 'walkeeper.io', r).has('update')).toBe(true);
    expect(verbs(role, 'walkeeper.io', 'tenants').has('patch')).toBe(true);
    // Rolling restart deletes pods; the operator never creates them.
    expect([...verbs(role, '', 'pods')].sort()).toEqual(['delete', 'get', 'list', 'watch']);
  });
});

describe('watchNamespace: the Role lives in the watched namespace, bound to the release ServiceAccount', () => {
  const objs = render({ watchNamespace: 'apps' });
  test('Role and RoleBinding in "apps"', () => {
    expect(findOne(objs, 'Role', OPERATOR).metadata.namespace).toBe('apps');
    const rb = binding(objs, 'RoleBinding', OPERATOR);
    expect(rb.metadata.namespace).toBe('apps');
    expect(rb.subjects).toEqual([{ kind: 'ServiceAccount', name: SA, namespace: NAMESPACE }]);
    expect(findAll(objs, 'ClusterRole')).toEqual([]);
  });
});

describe('watchAllNamespaces: ClusterRole and ClusterRoleBinding', () => {
  const objs = render({ watchAllNamespaces: true });
  test('cluster-wide objects replace the namespaced ones, with the same rules', () => {
    expect(findAll(objs, 'Role')).toEqual([]);
    expect(findAll(objs, 'RoleBinding')).toEqual([]);
    const cr = findOne(objs, 'ClusterRole', OPERATOR);
    expect(cr.metadata.namespace).toBeUndefined();
    expect(cr.rules).toEqual(findOne(render(), 'Role', OPERATOR).rules);
    const crb = binding(objs, 'ClusterRoleBinding', OPERATOR);
    expect(crb.roleRef).toEqual({ apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: OPERATOR });
    expect(crb.subjects).toEqual([{ kind: 'ServiceAccount', name: SA, namespace: NAMESPACE }]);
    assertLeastPrivilege(cr);
  });
});

describe('leader election: a Role for the one Lease in the release namespace', () => {
  for (const [name, values] of [
    ['namespaced', { operator: { replicas: 2 } }],
    ['cluster-wide', { operator: { replicas: 2 }, watchAllNamespaces: true }],
  ] as const) {
    test(name, () => {
      const objs = render(values);
      const role = findOne(objs, 'Role', `${OPERATOR}-leader-election`);
      expect(role.metadata.namespace).toBe(NAMESPACE);
      assertLeastPrivilege(role);
      // create cannot be limited by name; get/update are limited to the configured Lease.
      const named = rules(role).filter((r) => r.resources.includes('leases') && r.resourceNames);
      expect(named).toEqual([{ apiGroups: ['coordination.k8s.io'], resources: ['leases'], resourceNames: ['walkeeper-operator'], verbs: ['get', 'update', 'patch'] }]);
      expect([...verbs(rules(role), 'coordination.k8s.io', 'leases', { unrestricted: true })]).toEqual(['create']);
      const rb = binding(objs, 'RoleBinding', `${OPERATOR}-leader-election`);
      expect(rb.metadata.namespace).toBe(NAMESPACE);
      expect(rb.roleRef.name).toBe(role.metadata.name);
      // The Lease the operator uses is the one the Role names, in the namespace the Role is in.
      const env = Object.fromEntries(
        ((findOne(objs, 'Deployment', OPERATOR).spec as { template: { spec: { containers: Array<{ env: Array<{ name: string; value?: string }> }> } } }).template.spec.containers[0]!.env).map((e) => [e.name, e.value]),
      );
      expect(env.LEASE_NAME).toBe('walkeeper-operator');
      expect(env.LEASE_NAMESPACE).toBe(NAMESPACE);
    });
  }
});

test('rbac.create=false renders no RBAC at all', () => {
  const objs = render({ rbac: { create: false }, operator: { replicas: 2 } });
  for (const k of ['Role', 'RoleBinding', 'ClusterRole', 'ClusterRoleBinding']) expect(findAll(objs, k)).toEqual([]);
});
