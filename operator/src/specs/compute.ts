// Pure builders: Tenant → compute StatefulSet (PostgreSQL + proposer sidecar), Service (5432) and
// credentials Secret. The password is an input: generated once by the controller and then kept.
import type { Safekeeper, Tenant } from '../api/schema.js';
import { LABEL_TENANT, names, ownerReference, ports, selectorLabels, standardLabels } from './meta.js';
import { remoteStorageCredentialsEnv, remoteStorageSettings, safekeeperAddresses, type SafekeeperBuildOptions, defaultBuildOptions } from './safekeeper.js';
import type { Json, KubeObject, SecretLike, StatefulSetLike } from './types.js';

export const POSTGRES_UID = 999;
export const COMPUTE_USER = 'postgres';
export const COMPUTE_DB = 'postgres';
export const PROPOSER_CONTAINER = 'proposer';
const SAFEKEEPER_CA_MOUNT = '/etc/walkeeper/safekeeper-ca';

/**
 * With auth on, the proposer presents a tenant-scoped JWT to the safekeepers, read from the
 * Safekeeper's auth Secret under this key (the operator holds no private key, so it cannot mint
 * one; the administrator adds it, e.g. `walctl token create --scope tenant --tenant-id T`).
 */
export const tenantTokenKey = (tenantName: string) => `tenant-token-${tenantName}`;

/** Settings the proposer needs from PostgreSQL (ARCHITECTURE §5); user parameters come after them. */
export const REQUIRED_POSTGRES_PARAMETERS: ReadonlyArray<[string, string]> = [
  ['wal_level', 'replica'],
  ['max_wal_senders', '10'],
  ['max_replication_slots', '10'],
  ['synchronous_standby_names', 'walkeeper_proposer'],
  ['synchronous_commit', 'on'],
];

export interface ComputeInputs {
  tenant: Tenant;
  safekeeper: Safekeeper;
  tenantId: string;
  timelineId: string;
  /** The image running the proposer: the Safekeeper's data-plane image. */
  dataPlaneImage: string;
  options?: SafekeeperBuildOptions;
  /** spec.bootstrap.recovery, resolved: the restore starts an empty timeline from this source */
  recovery?: ComputeRecovery;
}

export interface ComputeRecovery {
  /** the source Tenant's name (its token's key in the auth Secret) */
  tenant: string;
  tenantId: string;
  timelineId: string;
  targetTime?: string;
  targetLsn?: string;
}

/** The restore's flags for a recovery: used only while the tenant's own timeline is empty. */
export function recoveryArgs(r: ComputeRecovery | undefined): string[] {
  if (!r) return [];
  return [
    '--recover-from-tenant-id', r.tenantId,
    '--recover-from-timeline-id', r.timelineId,
    ...(r.targetTime ? ['--target-time', r.targetTime] : []),
    ...(r.targetLsn ? ['--target-lsn', r.targetLsn] : []),
  ];
}

/**
 * The source tenant's token, when the safekeepers require one. Optional: a missing key lets the
 * restore start and fail with the safekeepers' own words instead of a pod stuck unstartable.
 */
function recoveryTokenEnv(safekeeper: Safekeeper, r: ComputeRecovery | undefined): Json[] {
  if (!r || !safekeeper.spec.auth) return [];
  return [{ name: 'WALKEEPER_RECOVER_FROM_AUTH_TOKEN', valueFrom: { secretKeyRef: { name: safekeeper.spec.auth.secretRef.name, key: tenantTokenKey(r.tenant), optional: true } } }];
}

export const RESTORE_CONTAINER = 'restore';
const PGDATA = '/var/lib/postgresql/data/pgdata';

/** The PostgreSQL major an image tag names (`postgres:15`, `.../postgres:15.8-bookworm`), if it names one. */
export function imageMajor(image: string): number | undefined {
  const tag = /:([^/@]+)(?:@.*)?$/.exec(image)?.[1];
  const m = tag ? /^(\d+)(?:[.-]|$)/.exec(tag) : null;
  return m ? Number(m[1]) : undefined;
}

/**
 * The compute's volume may be new (a deleted PVC, a lost disk): before PostgreSQL starts, an init
 * container rebuilds an empty data directory from the bucket's newest backup and the safekeepers'
 * WAL instead of letting the image run initdb, which the safekeepers would refuse as another
 * system (docs/operations.md, "A compute's start on a volume that may be new"). It needs the
 * bucket, and a major version to check backups against; without either there is nothing to
 * restore from. Safekeepers behind TLS are not reached by it yet. For spec.bootstrap.recovery
 * it starts the (still empty) timeline from the source's backup and WAL up to the target.
 */
function restoreInitContainer(inputs: ComputeInputs, env: Json[], restricted: Json): Json | undefined {
  const { tenant, safekeeper, tenantId, timelineId, dataPlaneImage } = inputs;
  const major = imageMajor(tenant.spec.compute.image);
  if (!safekeeper.spec.remoteStorage || safekeeper.spec.tls || major === undefined) return undefined;
  return {
    name: RESTORE_CONTAINER,
    image: dataPlaneImage,
    command: [
      'walkeeper', 'restore', '--if-empty', '--stream-only',
      '--pg-version', String(major),
      '--datadir', PGDATA,
      '--safekeepers', safekeeperAddresses(safekeeper, inputs.options ?? defaultBuildOptions),
      '--tenant-id', tenantId,
      '--timeline-id', timelineId,
      ...recoveryArgs(inputs.recovery),
    ],
    env: [...env, ...recoveryTokenEnv(safekeeper, inputs.recovery)],
    securityContext: restricted,
    volumeMounts: [
      { name: 'pgdata', mountPath: '/var/lib/postgresql/data' },
      { name: 'tmp', mountPath: '/tmp' },
    ],
  };
}

function meta(tenant: Tenant, name: string): KubeObject['metadata'] {
  const instance = tenant.metadata.name ?? '';
  return {
    name,
    namespace: tenant.metadata.namespace,
    labels: standardLabels('compute', instance, { [LABEL_TENANT]: instance }),
    ownerReferences: [ownerReference(tenant)],
  };
}

export function computeHost(tenant: Tenant, clusterDomain = defaultBuildOptions.clusterDomain): string {
  return `${names.computeService(tenant.metadata.name ?? '')}.${tenant.metadata.namespace ?? 'default'}.svc.${clusterDomain}`;
}

export function postgresArgs(parameters: Record<string, string> | undefined): string[] {
  const args: string[] = [];
  for (const [k, v] of REQUIRED_POSTGRES_PARAMETERS) args.push('-c', `${k}=${v}`);
  for (const k of Object.keys(parameters ?? {}).sort()) args.push('-c', `${k}=${parameters![k]}`);
  return args;
}

const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');

export function buildSecret(tenant: Tenant, password: string, clusterDomain = defaultBuildOptions.clusterDomain): SecretLike {
  const host = computeHost(tenant, clusterDomain);
  const uri = `postgresql://${COMPUTE_USER}:${encodeURIComponent(password)}@${host}:${ports.postgres}/${COMPUTE_DB}`;
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: meta(tenant, names.computeSecret(tenant.metadata.name ?? '')),
    type: 'Opaque',
    // `data` (not stringData) so the object compares equal to what the server stores.
    data: {
      username: b64(COMPUTE_USER),
      password: b64(password),
      host: b64(host),
      port: b64(String(ports.postgres)),
      dbname: b64(COMPUTE_DB),
      uri: b64(uri),
    },
  };
}

export function buildComputeService(tenant: Tenant): KubeObject {
  const name = tenant.metadata.name ?? '';
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: meta(tenant, names.computeService(name)),
    spec: {
      type: 'ClusterIP',
      selector: selectorLabels('compute', name),
      ports: [{ name: 'postgres', port: ports.postgres, targetPort: 'postgres', protocol: 'TCP' }],
    },
  };
}

export function buildComputeStatefulSet(inputs: ComputeInputs): StatefulSetLike {
  const { tenant, safekeeper, tenantId, timelineId, dataPlaneImage } = inputs;
  const opts = inputs.options ?? defaultBuildOptions;
  const name = tenant.metadata.name ?? '';
  const secret = names.computeSecret(name);
  const fromSecret = (key: string) => ({ secretKeyRef: { name: secret, key } });
  const restricted: Json = { runAsNonRoot: true, allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } };
  const compute = tenant.spec.compute;

  const postgres: Json = {
    name: 'postgres',
    image: compute.image,
    args: postgresArgs(compute.postgresParameters),
    env: [
      { name: 'POSTGRES_USER', valueFrom: fromSecret('username') },
      { name: 'POSTGRES_PASSWORD', valueFrom: fromSecret('password') },
      { name: 'POSTGRES_DB', valueFrom: fromSecret('dbname') },
      // A subdirectory, so initdb never meets the volume's lost+found.
      { name: 'PGDATA', value: PGDATA },
    ],
    ports: [{ name: 'postgres', containerPort: ports.postgres, protocol: 'TCP' }],
    readinessProbe: { exec: { command: ['pg_isready', '-h', '127.0.0.1', '-U', COMPUTE_USER] }, periodSeconds: 5, timeoutSeconds: 3 },
    livenessProbe: { tcpSocket: { port: ports.postgres }, periodSeconds: 10, failureThreshold: 6, initialDelaySeconds: 30 },
    ...(compute.resources ? { resources: compute.resources } : {}),
    securityContext: restricted,
    volumeMounts: [
      { name: 'pgdata', mountPath: '/var/lib/postgresql/data' },
      { name: 'run', mountPath: '/var/run/postgresql' },
      { name: 'tmp', mountPath: '/tmp' },
    ],
  };
  // The token, the bucket and its credentials: what the proposer and the restore both need.
  const dataPlaneEnv: Json[] = [
    ...(safekeeper.spec.auth
      ? [{ name: 'WALKEEPER_AUTH_TOKEN', valueFrom: { secretKeyRef: { name: safekeeper.spec.auth.secretRef.name, key: tenantTokenKey(name) } } }]
      : []),
    // The bucket base backups go to (POST /v1/backups), the same one the safekeepers offload to.
    ...Object.entries(remoteStorageSettings(safekeeper)).map(([n, value]) => ({ name: n, value })),
    ...remoteStorageCredentialsEnv(safekeeper),
  ];
  const restore = restoreInitContainer(inputs, dataPlaneEnv, restricted);
  const proposer: Json = {
    name: PROPOSER_CONTAINER,
    image: dataPlaneImage,
    command: [
      'walkeeper',
      'proposer',
      '--pg',
      `host=127.0.0.1 port=${ports.postgres} user=${COMPUTE_USER} dbname=${COMPUTE_DB}`,
      '--safekeepers',
      safekeeperAddresses(safekeeper, opts),
      '--tenant',
      tenantId,
      '--timeline',
      timelineId,
      '--listen-http',
      `0.0.0.0:${ports.proposerHttp}`,
      // a rebuilt data directory starts as a standby: the proposer takes the timeline and promotes it
      // (a recovery's standby, beside an empty timeline, promotes itself at its target instead)
      ...(restore ? ['--promote'] : []),
    ],
    env: [
      { name: 'PGPASSWORD', valueFrom: fromSecret('password') },
      ...(safekeeper.spec.tls ? [{ name: 'WALKEEPER_TLS_CA', value: `${SAFEKEEPER_CA_MOUNT}/ca.crt` }] : []),
      ...dataPlaneEnv,
    ],
    ports: [{ name: 'http', containerPort: ports.proposerHttp, protocol: 'TCP' }],
    livenessProbe: { httpGet: { path: '/healthz', port: ports.proposerHttp }, periodSeconds: 10, failureThreshold: 6 },
    securityContext: restricted,
    volumeMounts: [{ name: 'tmp', mountPath: '/tmp' }, ...(safekeeper.spec.tls ? [{ name: 'safekeeper-ca', mountPath: SAFEKEEPER_CA_MOUNT, readOnly: true }] : [])],
  };

  return {
    apiVersion: 'apps/v1',
    kind: 'StatefulSet',
    metadata: meta(tenant, names.computeStatefulSet(name)),
    spec: {
      replicas: 1,
      serviceName: names.computeService(name),
      selector: { matchLabels: selectorLabels('compute', name) },
      podManagementPolicy: 'OrderedReady',
      updateStrategy: { type: 'RollingUpdate' },
      template: {
        metadata: { labels: standardLabels('compute', name, { [LABEL_TENANT]: name }) },
        spec: {
          securityContext: {
            runAsNonRoot: true,
            runAsUser: POSTGRES_UID,
            runAsGroup: POSTGRES_UID,
            fsGroup: POSTGRES_UID,
            seccompProfile: { type: 'RuntimeDefault' },
          },
          terminationGracePeriodSeconds: 60,
          ...(restore ? { initContainers: [restore] } : {}),
          containers: [postgres, proposer],
          volumes: [
            { name: 'run', emptyDir: {} },
            { name: 'tmp', emptyDir: {} },
            // Only the CA: the safekeepers' private key stays out of compute pods.
            ...(safekeeper.spec.tls ? [{ name: 'safekeeper-ca', secret: { secretName: safekeeper.spec.tls.secretRef.name, items: [{ key: 'ca.crt', path: 'ca.crt' }] } }] : []),
          ],
        },
      },
      volumeClaimTemplates: [
        {
          apiVersion: 'v1',
          kind: 'PersistentVolumeClaim',
          metadata: { name: 'pgdata', labels: selectorLabels('compute', name) },
          spec: {
            accessModes: ['ReadWriteOnce'],
            resources: { requests: { storage: compute.storage.size } },
            ...(compute.storage.storageClassName ? { storageClassName: compute.storage.storageClassName } : {}),
          },
        },
      ],
    },
  };
}
