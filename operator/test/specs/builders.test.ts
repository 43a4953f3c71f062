import { StatefulSet } from 'kubernetes-models/apps/v1/StatefulSet';
import { Service } from 'kubernetes-models/v1/Service';
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { Secret } from 'kubernetes-models/v1/Secret';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget';
import { validateResource } from '../../src/api/validation.js';
import type { Safekeeper, Tenant } from '../../src/api/schema.js';
import { buildSafekeeperChildren, buildStatefulSet, revisionOf } from '../../src/specs/safekeeper.js';
import { buildComputeService, buildComputeStatefulSet, buildSecret, imageMajor } from '../../src/specs/compute.js';
import type { Json } from '../../src/specs/types.js';

function safekeeper(extra: Record<string, unknown> = {}, annotations: Record<string, string> = {}): Safekeeper {
  return validateResource<Safekeeper>('Safekeeper', {
    apiVersion: 'walkeeper.io/v1alpha1',
    kind: 'Safekeeper',
    metadata: { name: 'wal', namespace: 'db', uid: 'sk-uid', annotations },
    spec: { ...extra },
  }).value;
}
function tenant(compute: Record<string, unknown> = {}): Tenant {
  return validateResource<Tenant>('Tenant', {
    apiVersion: 'walkeeper.io/v1alpha1',
    kind: 'Tenant',
    metadata: { name: 'app', namespace: 'db', uid: 't-uid' },
    spec: { safekeeperRef: { name: 'wal' }, compute },
  }).value;
}
const container = (sts: { spec: { template: { spec?: Json } } }, i = 0) => (sts.spec.template.spec!.containers as Json[])[i] as Json & { command: string[]; args: string[] };

describe('Safekeeper builders', () => {
  test('every child validates against the Kubernetes schemas (kubernetes-models)', () => {
    const children = buildSafekeeperChildren(safekeeper({ auth: { secretRef: { name: 'wal-auth' } }, resources: { limits: { cpu: '1' } } }));
    const models: Record<string, (o: unknown) => { validate(): void }> = {
      StatefulSet: (o) => new StatefulSet(o as never),
      Service: (o) => new Service(o as never),
      ConfigMap: (o) => new ConfigMap(o as never),
      PodDisruptionBudget: (o) => new PodDisruptionBudget(o as never),
    };
    expect(children.map((c) => c.kind).sort()).toEqual(['ConfigMap', 'PodDisruptionBudget', 'Service', 'Service', 'StatefulSet']);
    for (const c of children) expect(() => models[c.kind](c).validate()).not.toThrow();
  });

  test('StatefulSet: OnDelete, Parallel, one PVC per pod, probes, non-root, read-only root, owner reference', () => {
    const sts = buildStatefulSet(safekeeper({ replicas: 5, storage: { size: '20Gi', storageClassName: 'fast' } }));
    expect(sts.spec).toMatchObject({ replicas: 5, updateStrategy: { type: 'OnDelete' }, podManagementPolicy: 'Parallel', serviceName: 'wal-headless' });
    expect(sts.spec.volumeClaimTemplates).toEqual([expect.objectContaining({ spec: expect.objectContaining({ storageClassName: 'fast', resources: { requests: { storage: '20Gi' } } }) })]);
    const c = container(sts);
    expect(c.command).toEqual(['walkeeper', 'safekeeper', '--id-from-hostname', '--datadir', '/data', '--listen-pg', '0.0.0.0:5454', '--listen-http', '0.0.0.0:7676']);
    expect(c.livenessProbe).toMatchObject({ httpGet: { path: '/healthz', port: 7676 } });
    expect(c.readinessProbe).toMatchObject({ httpGet: { path: '/readyz', port: 7676 } });
    expect(c.securityContext).toMatchObject({ runAsNonRoot: true, readOnlyRootFilesystem: true, allowPrivilegeEscalation: false });
    expect(sts.metadata.ownerReferences).toEqual([expect.objectContaining({ kind: 'Safekeeper', uid: 'sk-uid', controller: true })]);
    expect(sts.metadata.labels).toMatchObject({ 'app.kubernetes.io/name': 'walkeeper', 'app.kubernetes.io/managed-by': 'walkeeper-operator', 'app.kubernetes.io/instance': 'wal' });
    expect(sts.spec.template.spec!.topologySpreadConstraints).toEqual(expect.arrayContaining([expect.objectContaining({ topologyKey: 'topology.kubernetes.io/zone' })]));
  });

  test('remote storage and keep sizes reach the pods through the ConfigMap; credentials from the Secret', () => {
    const sk = safekeeper({
      remoteStorage: { url: 's3://wal-bucket/prod', endpoint: 'http://minio:9000', region: 'eu-west-1', pathStyle: true, checksum: 'when_required', credentials: { secretRef: { name: 'wal-bucket' } } },
      walKeepSize: '1GB',
      maxSlotWalKeepSize: '10GB',
    });
    const children = buildSafekeeperChildren(sk);
    const cm = children.find((c) => c.kind === 'ConfigMap') as unknown as { data: Record<string, string> };
    expect(cm.data).toMatchObject({
      WALKEEPER_REMOTE_STORAGE: 's3://wal-bucket/prod',
      WALKEEPER_REMOTE_STORAGE_MEMBERS: '3',
      WALKEEPER_REMOTE_STORAGE_ENDPOINT: 'http://minio:9000',
      WALKEEPER_REMOTE_STORAGE_REGION: 'eu-west-1',
      WALKEEPER_REMOTE_STORAGE_PATH_STYLE: 'true',
      WALKEEPER_REMOTE_STORAGE_CHECKSUM: 'when_required',
      WALKEEPER_WAL_KEEP_SIZE: '1GB',
      WALKEEPER_MAX_SLOT_WAL_KEEP_SIZE: '10GB',
    });
    const c = container(buildStatefulSet(sk));
    expect(c.env).toEqual([
      { name: 'AWS_ACCESS_KEY_ID', valueFrom: { secretKeyRef: { name: 'wal-bucket', key: 'AWS_ACCESS_KEY_ID' } } },
      { name: 'AWS_SECRET_ACCESS_KEY', valueFrom: { secretKeyRef: { name: 'wal-bucket', key: 'AWS_SECRET_ACCESS_KEY' } } },
      { name: 'AWS_SESSION_TOKEN', valueFrom: { secretKeyRef: { name: 'wal-bucket', key: 'AWS_SESSION_TOKEN', optional: true } } },
    ]);
    // The settings are part of the config hash, so changing them rolls the members.
    const before = buildStatefulSet(sk).spec.template.metadata?.annotations;
    const after = buildStatefulSet(safekeeper({ ...sk.spec, walKeepSize: '2GB' })).spec.template.metadata?.annotations;
    expect(after?.['walkeeper.io/config-hash']).not.toEqual(before?.['walkeeper.io/config-hash']);
    // Without them, nothing lifecycle-related is set: the safekeeper's defaults apply.
    const plain = buildSafekeeperChildren(safekeeper()).find((c) => c.kind === 'ConfigMap') as unknown as { data: Record<string, string> };
    expect(Object.keys(plain.data).filter((k) => /REMOTE_STORAGE|WAL_KEEP_SIZE/.test(k))).toEqual([]);
  });

  test('auth mounts only public.pem and passes --auth-public-key', () => {
    const sts = buildStatefulSet(safekeeper({ auth: { secretRef: { name: 'wal-auth' } } }));
    expect(container(sts).command.slice(-2)).toEqual(['--auth-public-key', '/etc/walkeeper/auth/public.pem']);
    expect(sts.spec.template.spec!.volumes).toContainEqual({ name: 'auth', secret: { secretName: 'wal-auth', items: [{ key: 'public.pem', path: 'public.pem' }] } });
  });

  test('tls mounts tls.crt and tls.key, sets WALKEEPER_TLS_CERT/KEY and probes over HTTPS', () => {
    const sts = buildStatefulSet(safekeeper({ tls: { secretRef: { name: 'wal-tls' } } }));
    expect(() => new StatefulSet(sts as never).validate()).not.toThrow();
    const c = container(sts);
    expect(c.env).toEqual([
      { name: 'WALKEEPER_TLS_CERT', value: '/etc/walkeeper/tls/tls.crt' },
      { name: 'WALKEEPER_TLS_KEY', value: '/etc/walkeeper/tls/tls.key' },
    ]);
    expect(c.volumeMounts).toContainEqual({ name: 'tls', mountPath: '/etc/walkeeper/tls', readOnly: true });
    expect(sts.spec.template.spec!.volumes).toContainEqual({
      name: 'tls',
      secret: { secretName: 'wal-tls', items: [{ key: 'tls.crt', path: 'tls.crt' }, { key: 'tls.key', path: 'tls.key' }] },
    });
    expect(c.livenessProbe).toMatchObject({ httpGet: { path: '/healthz', port: 7676, scheme: 'HTTPS' } });
    expect(c.readinessProbe).toMatchObject({ httpGet: { path: '/readyz', port: 7676, scheme: 'HTTPS' } });
    // the template changes, so members roll onto TLS
    expect(revisionOf(sts)).toBeDefined();
    expect(revisionOf(sts)).not.toBe(revisionOf(buildStatefulSet(safekeeper())));
  });

  test('without tls: no env, no tls volume, probes without a scheme (HTTP)', () => {
    const sts = buildStatefulSet(safekeeper());
    const c = container(sts);
    expect(c.env).toBeUndefined();
    expect((sts.spec.template.spec!.volumes as Json[]).map((v) => v.name)).not.toContain('tls');
    expect((c.livenessProbe as { httpGet: Json }).httpGet.scheme).toBeUndefined();
    expect((c.readinessProbe as { httpGet: Json }).httpGet.scheme).toBeUndefined();
  });

  test('placement passes through: nodeSelector, tolerations, affinity', () => {
    const affinity = { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchExpressions: [{ key: 'disk', operator: 'In', values: ['ssd'] }] }] } } };
    const sts = buildStatefulSet(safekeeper({ nodeSelector: { pool: 'wal' }, tolerations: [{ key: 'dedicated', operator: 'Exists' }], affinity }));
    expect(sts.spec.template.spec).toMatchObject({ nodeSelector: { pool: 'wal' }, tolerations: [{ key: 'dedicated', operator: 'Exists' }], affinity });
  });

  test('the template hash is stable, changes with image or restartedAt, and is copied to pods and the StatefulSet', () => {
    const a = buildStatefulSet(safekeeper());
    expect(revisionOf(buildStatefulSet(safekeeper()))).toBe(revisionOf(a));
    expect(revisionOf(buildStatefulSet(safekeeper({ image: 'x:2' })))).not.toBe(revisionOf(a));
    const restarted = buildStatefulSet(safekeeper({}, { 'walkeeper.io/restartedAt': '2026-01-01T00:00:00Z' }));
    expect(revisionOf(restarted)).not.toBe(revisionOf(a));
    expect(restarted.spec.template.metadata!.annotations!['walkeeper.io/restartedAt']).toBe('2026-01-01T00:00:00Z');
    expect(restarted.spec.template.metadata!.annotations!['walkeeper.io/template-hash']).toBe(revisionOf(restarted));
  });

  test('headless Service publishes not-ready addresses; PDB allows one unavailable', () => {
    const [cm, headless, client, pdb] = buildSafekeeperChildren(safekeeper());
    expect(headless.spec).toMatchObject({ clusterIP: 'None', publishNotReadyAddresses: true });
    expect(client.spec).toMatchObject({ type: 'ClusterIP' });
    expect(pdb.spec).toMatchObject({ maxUnavailable: 1 });
    expect((cm.data as Record<string, string>).WALKEEPER_SAFEKEEPERS).toBe(
      'wal-0.wal-headless.db.svc.cluster.local:5454,wal-1.wal-headless.db.svc.cluster.local:5454,wal-2.wal-headless.db.svc.cluster.local:5454',
    );
  });
});

describe('Tenant compute builders', () => {
  const inputs = { tenant: tenant({ postgresParameters: { work_mem: '64MB' } }), safekeeper: safekeeper(), tenantId: 'a'.repeat(32), timelineId: 'b'.repeat(32), dataPlaneImage: 'img:1' };

  test('compute StatefulSet validates and runs PostgreSQL plus the proposer sidecar', () => {
    const sts = buildComputeStatefulSet(inputs);
    expect(() => new StatefulSet(sts as never).validate()).not.toThrow();
    expect(sts.spec.replicas).toBe(1);
    const pg = container(sts, 0);
    expect(pg.image).toBe('postgres:15');
    expect(pg.args).toEqual([
      '-c', 'wal_level=replica', '-c', 'max_wal_senders=10', '-c', 'max_replication_slots=10',
      '-c', 'synchronous_standby_names=walkeeper_proposer', '-c', 'synchronous_commit=on', '-c', 'work_mem=64MB',
    ]);
    expect(pg.env).toContainEqual({ name: 'POSTGRES_PASSWORD', valueFrom: { secretKeyRef: { name: 'app-credentials', key: 'password' } } });
    const proposer = container(sts, 1);
    expect(proposer.image).toBe('img:1');
    expect(proposer.command).toEqual([
      'walkeeper', 'proposer', '--pg', 'host=127.0.0.1 port=5432 user=postgres dbname=postgres',
      '--safekeepers', 'wal-0.wal-headless.db.svc.cluster.local:5454,wal-1.wal-headless.db.svc.cluster.local:5454,wal-2.wal-headless.db.svc.cluster.local:5454',
      '--tenant', 'a'.repeat(32), '--timeline', 'b'.repeat(32), '--listen-http', '0.0.0.0:7677',
    ]);
    expect(proposer.env).toEqual([{ name: 'PGPASSWORD', valueFrom: { secretKeyRef: { name: 'app-credentials', key: 'password' } } }]);
  });

  test('with auth on, the proposer presents its tenant token from the Safekeeper\'s auth Secret', () => {
    const sts = buildComputeStatefulSet({ ...inputs, safekeeper: safekeeper({ auth: { secretRef: { name: 'wal-auth' } } }) });
    const proposer = container(sts, 1);
    expect(proposer.env).toEqual([
      { name: 'PGPASSWORD', valueFrom: { secretKeyRef: { name: 'app-credentials', key: 'password' } } },
      { name: 'WALKEEPER_AUTH_TOKEN', valueFrom: { secretKeyRef: { name: 'wal-auth', key: 'tenant-token-app' } } },
    ]);
  });

  test('with remote storage, the proposer gets the bucket (for base backups) and its credentials; postgres does not', () => {
    const sk = safekeeper({ remoteStorage: { url: 's3://wal-bucket/prod', endpoint: 'http://minio:9000', pathStyle: true, credentials: { secretRef: { name: 'wal-bucket' } } } });
    const sts = buildComputeStatefulSet({ ...inputs, safekeeper: sk });
    expect(() => new StatefulSet(sts as never).validate()).not.toThrow();
    const proposer = container(sts, 1);
    expect(proposer.env).toEqual([
      { name: 'PGPASSWORD', valueFrom: { secretKeyRef: { name: 'app-credentials', key: 'password' } } },
      { name: 'WALKEEPER_REMOTE_STORAGE', value: 's3://wal-bucket/prod' },
      { name: 'WALKEEPER_REMOTE_STORAGE_ENDPOINT', value: 'http://minio:9000' },
      { name: 'WALKEEPER_REMOTE_STORAGE_PATH_STYLE', value: 'true' },
      { name: 'AWS_ACCESS_KEY_ID', valueFrom: { secretKeyRef: { name: 'wal-bucket', key: 'AWS_ACCESS_KEY_ID' } } },
      { name: 'AWS_SECRET_ACCESS_KEY', valueFrom: { secretKeyRef: { name: 'wal-bucket', key: 'AWS_SECRET_ACCESS_KEY' } } },
      { name: 'AWS_SESSION_TOKEN', valueFrom: { secretKeyRef: { name: 'wal-bucket', key: 'AWS_SESSION_TOKEN', optional: true } } },
    ]);
    expect(JSON.stringify(container(sts, 0))).not.toContain('wal-bucket');
  });

  test('with remote storage, an init container rebuilds an empty volume from the bucket before PostgreSQL starts, and the proposer may promote the result', () => {
    const sk = safekeeper({ remoteStorage: { url: 's3://wal-bucket/prod', credentials: { secretRef: { name: 'wal-bucket' } } }, auth: { secretRef: { name: 'wal-auth' } } });
    const sts = buildComputeStatefulSet({ ...inputs, safekeeper: sk });
    expect(() => new StatefulSet(sts as never).validate()).not.toThrow();
    const init = (sts.spec.template.spec as { initContainers?: Record<string, unknown>[] }).initContainers ?? [];
    expect(init.map((c) => c.name)).toEqual(['restore']);
    expect(init[0].image).toBe('img:1');
    expect(init[0].command).toEqual([
      'walkeeper', 'restore', '--if-empty', '--stream-only', '--pg-version', '15', '--datadir', '/var/lib/postgresql/data/pgdata',
      '--safekeepers', 'wal-0.wal-headless.db.svc.cluster.local:5454,wal-1.wal-headless.db.svc.cluster.local:5454,wal-2.wal-headless.db.svc.cluster.local:5454',
      '--tenant-id', 'a'.repeat(32), '--timeline-id', 'b'.repeat(32),
    ]);
    // the same volume and data directory as PostgreSQL, the bucket's credentials and the tenant's token
    expect(init[0].volumeMounts).toContainEqual({ name: 'pgdata', mountPath: '/var/lib/postgresql/data' });
    expect((init[0].env as { name: string }[]).map((e) => e.name)).toEqual(['WALKEEPER_AUTH_TOKEN', 'WALKEEPER_REMOTE_STORAGE', 'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN']);
    expect(container(sts, 1).command).toContain('--promote');
  });

  test('a recovery (spec.bootstrap.recovery) adds the source and its target to the restore, and the source tenant\'s token when auth is on', () => {
    const sk = safekeeper({ remoteStorage: { url: 's3://wal-bucket/prod' }, auth: { secretRef: { name: 'wal-auth' } } });
    const recovery = { tenant: 'origin', tenantId: 'c'.repeat(32), timelineId: 'd'.repeat(32), targetTime: '2026-12-04T03:00:00Z' };
    const sts = buildComputeStatefulSet({ ...inputs, safekeeper: sk, recovery });
    expect(() => new StatefulSet(sts as never).validate()).not.toThrow();
    const init = ((sts.spec.template.spec as { initContainers?: Record<string, unknown>[] }).initContainers ?? [])[0];
    expect((init.command as string[]).slice(-6)).toEqual(['--recover-from-tenant-id', 'c'.repeat(32), '--recover-from-timeline-id', 'd'.repeat(32), '--target-time', '2026-12-04T03:00:00Z']);
    expect(init.env).toContainEqual({ name: 'WALKEEPER_RECOVER_FROM_AUTH_TOKEN', valueFrom: { secretKeyRef: { name: 'wal-auth', key: 'tenant-token-origin', optional: true } } });
    // the source's token goes to the restore only, never to the proposer, which writes this tenant's timeline
    expect(JSON.stringify(container(sts, 1))).not.toContain('tenant-token-origin');
    expect(container(sts, 1).command).toContain('--promote');
    const byLsn = buildComputeStatefulSet({ ...inputs, safekeeper: safekeeper({ remoteStorage: { url: 's3://b/p' } }), recovery: { tenant: 'origin', tenantId: 'c'.repeat(32), timelineId: 'd'.repeat(32), targetLsn: '0/3000060' } });
    const byLsnInit = ((byLsn.spec.template.spec as { initContainers?: Record<string, unknown>[] }).initContainers ?? [])[0];
    expect((byLsnInit.command as string[]).slice(-2)).toEqual(['--target-lsn', '0/3000060']);
    expect((byLsnInit.env as { name: string }[]).map((e) => e.name)).not.toContain('WALKEEPER_RECOVER_FROM_AUTH_TOKEN');
  });

  test.each([
    ['no bucket', {}, 'postgres:15'],
    ['TLS to the safekeepers', { remoteStorage: { url: 's3://b/p' }, tls: { secretRef: { name: 'wal-tls' } } }, 'postgres:15'],
    ['an image tag without a major version', { remoteStorage: { url: 's3://b/p' } }, 'registry.example/postgres:latest'],
  ])('without a restore init container when there is %s (the image runs initdb on an empty volume as before)', (_what, spec, image) => {
    const sts = buildComputeStatefulSet({ ...inputs, tenant: tenant({ image }), safekeeper: safekeeper(spec as never) });
    expect((sts.spec.template.spec as { initContainers?: unknown[] }).initContainers).toBeUndefined();
    expect(container(sts, 1).command).not.toContain('--promote');
  });

  test.each([['postgres:15', 15], ['postgres:16.4-bookworm', 16], ['registry:5000/lib/postgres:17@sha256:ab', 17], ['postgres', undefined], ['postgres:latest', undefined]])('imageMajor(%s) = %s', (image, major) => {
    expect(imageMajor(image)).toBe(major);
  });

  test('with tls on, the proposer gets only the CA of the Safekeeper\'s TLS Secret as WALKEEPER_TLS_CA', () => {
    const sts = buildComputeStatefulSet({ ...inputs, safekeeper: safekeeper({ tls: { secretRef: { name: 'wal-tls' } } }) });
    expect(() => new StatefulSet(sts as never).validate()).not.toThrow();
    const proposer = container(sts, 1);
    expect(proposer.env).toContainEqual({ name: 'WALKEEPER_TLS_CA', value: '/etc/walkeeper/safekeeper-ca/ca.crt' });
    expect(proposer.volumeMounts).toContainEqual({ name: 'safekeeper-ca', mountPath: '/etc/walkeeper/safekeeper-ca', readOnly: true });
    expect(sts.spec.template.spec!.volumes).toContainEqual({ name: 'safekeeper-ca', secret: { secretName: 'wal-tls', items: [{ key: 'ca.crt', path: 'ca.crt' }] } });
    // the postgres container does not see it
    expect(JSON.stringify(container(sts, 0))).not.toContain('safekeeper-ca');
  });

  test('Secret carries username, password, host, port, dbname, uri; Service exposes 5432', () => {
    const secret = buildSecret(inputs.tenant, 's3cret');
    expect(() => new Secret(secret as never).validate()).not.toThrow();
    const decoded = Object.fromEntries(Object.entries(secret.data!).map(([k, v]) => [k, Buffer.from(v, 'base64').toString()]));
    expect(decoded).toEqual({
      username: 'postgres', password: 's3cret', host: 'app-compute.db.svc.cluster.local', port: '5432', dbname: 'postgres',
      uri: 'postgresql://postgres:s3cret@app-compute.db.svc.cluster.local:5432/postgres',
    });
    const svc = buildComputeService(inputs.tenant);
    expect(() => new Service(svc as never).validate()).not.toThrow();
    expect((svc.spec as { ports: unknown[] }).ports).toEqual([expect.objectContaining({ port: 5432 })]);
  });
});
