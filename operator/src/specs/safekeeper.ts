// Pure builders: Safekeeper → StatefulSet, headless and client Services, PodDisruptionBudget, ConfigMap.
// No I/O; the controller applies what these return.
import { ANNOTATION_CONFIG_HASH, ANNOTATION_RESTARTED_AT, ANNOTATION_TEMPLATE_HASH, type Safekeeper } from '../api/schema.js';
import { LABEL_CLUSTER, memberFqdn, names, ownerReference, ports, selectorLabels, shortHash, standardLabels } from './meta.js';
import type { Json, KubeObject, StatefulSetLike } from './types.js';

export interface SafekeeperBuildOptions {
  /** Cluster DNS domain used in member addresses. */
  clusterDomain: string;
}
export const defaultBuildOptions: SafekeeperBuildOptions = { clusterDomain: 'cluster.local' };

export const SAFEKEEPER_UID = 10001;
const AUTH_MOUNT = '/etc/walkeeper/auth';
const TLS_MOUNT = '/etc/walkeeper/tls';

function meta(sk: Safekeeper, name: string): KubeObject['metadata'] {
  const instance = sk.metadata.name ?? '';
  return {
    name,
    namespace: sk.metadata.namespace,
    labels: standardLabels('safekeeper', instance, { [LABEL_CLUSTER]: instance }),
    ownerReferences: [ownerReference(sk)],
  };
}

/** Comma list `host:5454,...` of every member through the headless Service. */
export function safekeeperAddresses(sk: Safekeeper, opts: SafekeeperBuildOptions = defaultBuildOptions): string {
  const name = sk.metadata.name ?? '';
  const ns = sk.metadata.namespace ?? 'default';
  return Array.from({ length: sk.spec.replicas }, (_, i) => `${memberFqdn(name, ns, i, opts.clusterDomain)}:${ports.safekeeperPg}`).join(',');
}

export function buildConfigMap(sk: Safekeeper, opts: SafekeeperBuildOptions = defaultBuildOptions): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: meta(sk, names.safekeeperConfigMap(sk.metadata.name ?? '')),
    data: {
      // Read by the pods through envFrom; every flag has a WALKEEPER_<FLAG> environment twin.
      WALKEEPER_LOG_FORMAT: 'json',
      // For humans and tools: the member addresses a proposer should use.
      WALKEEPER_SAFEKEEPERS: safekeeperAddresses(sk, opts),
      ...walLifecycleSettings(sk),
    },
  };
}

/**
 * The WAL lifecycle flags (offload, keep sizes) as the safekeeper's environment twins. They sit
 * in the ConfigMap, so a change is part of the config hash and rolls the members one by one.
 */
function walLifecycleSettings(sk: Safekeeper): Record<string, string> {
  const out: Record<string, string> = remoteStorageSettings(sk);
  // Member ids are ordinal + 1, so the cluster size is all each member needs to agree on
  // which of them uploads a timeline (safekeeper/walBackup.ts).
  if (sk.spec.remoteStorage) out.WALKEEPER_REMOTE_STORAGE_MEMBERS = String(sk.spec.replicas);
  if (sk.spec.walKeepSize !== undefined) out.WALKEEPER_WAL_KEEP_SIZE = sk.spec.walKeepSize;
  if (sk.spec.maxSlotWalKeepSize !== undefined) out.WALKEEPER_MAX_SLOT_WAL_KEEP_SIZE = sk.spec.maxSlotWalKeepSize;
  return out;
}

/** The bucket's --remote-storage flags as environment twins: the safekeepers' and the proposer's. */
export function remoteStorageSettings(sk: Safekeeper): Record<string, string> {
  const out: Record<string, string> = {};
  const remote = sk.spec.remoteStorage;
  if (!remote) return out;
  out.WALKEEPER_REMOTE_STORAGE = remote.url;
  if (remote.endpoint !== undefined) out.WALKEEPER_REMOTE_STORAGE_ENDPOINT = remote.endpoint;
  if (remote.region !== undefined) out.WALKEEPER_REMOTE_STORAGE_REGION = remote.region;
  if (remote.pathStyle !== undefined) out.WALKEEPER_REMOTE_STORAGE_PATH_STYLE = String(remote.pathStyle);
  if (remote.checksum !== undefined) out.WALKEEPER_REMOTE_STORAGE_CHECKSUM = remote.checksum;
  return out;
}

/** Object-store credentials from the user's Secret, under the AWS names the S3 client reads. */
export function remoteStorageCredentialsEnv(sk: Safekeeper): Json[] {
  const secretName = sk.spec.remoteStorage?.credentials?.secretRef.name;
  if (!secretName) return [];
  const key = (name: string, optional = false) => ({ name, valueFrom: { secretKeyRef: { name: secretName, key: name, ...(optional ? { optional: true } : {}) } } });
  return [key('AWS_ACCESS_KEY_ID'), key('AWS_SECRET_ACCESS_KEY'), key('AWS_SESSION_TOKEN', true)];
}

export function buildHeadlessService(sk: Safekeeper): KubeObject {
  const name = sk.metadata.name ?? '';
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: meta(sk, names.safekeeperHeadlessService(name)),
    spec: {
      clusterIP: 'None',
      // Members must find each other (and proposers must find them) while not yet ready.
      publishNotReadyAddresses: true,
      selector: selectorLabels('safekeeper', name),
      ports: [
        { name: 'pg', port: ports.safekeeperPg, targetPort: 'pg', protocol: 'TCP' },
        { name: 'http', port: ports.safekeeperHttp, targetPort: 'http', protocol: 'TCP' },
      ],
    },
  };
}

export function buildClientService(sk: Safekeeper): KubeObject {
  const name = sk.metadata.name ?? '';
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: meta(sk, names.safekeeperClientService(name)),
    spec: {
      type: 'ClusterIP',
      selector: selectorLabels('safekeeper', name),
      ports: [
        { name: 'pg', port: ports.safekeeperPg, targetPort: 'pg', protocol: 'TCP' },
        { name: 'http', port: ports.safekeeperHttp, targetPort: 'http', protocol: 'TCP' },
      ],
    },
  };
}

export function buildPodDisruptionBudget(sk: Safekeeper): KubeObject {
  const name = sk.metadata.name ?? '';
  return {
    apiVersion: 'policy/v1',
    kind: 'PodDisruptionBudget',
    metadata: meta(sk, names.safekeeperPdb(name)),
    spec: { maxUnavailable: 1, selector: { matchLabels: selectorLabels('safekeeper', name) } },
  };
}

function containerSecurityContext(): Json {
  return {
    runAsNonRoot: true,
    allowPrivilegeEscalation: false,
    readOnlyRootFilesystem: true,
    capabilities: { drop: ['ALL'] },
  };
}

/** The pod template without the template-hash annotation (the hash is computed over this). */
function podTemplate(sk: Safekeeper, configHash: string): { metadata: KubeObject['metadata']; spec: Json } {
  const name = sk.metadata.name ?? '';
  const selector = selectorLabels('safekeeper', name);
  const command = [
    'walkeeper',
    'safekeeper',
    '--id-from-hostname',
    '--datadir',
    '/data',
    '--listen-pg',
    `0.0.0.0:${ports.safekeeperPg}`,
    '--listen-http',
    `0.0.0.0:${ports.safekeeperHttp}`,
  ];
  const volumeMounts: Json[] = [
    { name: 'data', mountPath: '/data' },
    { name: 'tmp', mountPath: '/tmp' },
  ];
  const volumes: Json[] = [{ name: 'tmp', emptyDir: {} }];
  if (sk.spec.auth) {
    command.push('--auth-public-key', `${AUTH_MOUNT}/public.pem`);
    volumeMounts.push({ name: 'auth', mountPath: AUTH_MOUNT, readOnly: true });
    // Only the public key is mounted; the admin token in the same Secret stays with the operator.
    volumes.push({ name: 'auth', secret: { secretName: sk.spec.auth.secretRef.name, items: [{ key: 'public.pem', path: 'public.pem' }] } });
  }
  const env: Json[] = [...remoteStorageCredentialsEnv(sk)];
  if (sk.spec.tls) {
    env.push({ name: 'WALKEEPER_TLS_CERT', value: `${TLS_MOUNT}/tls.crt` }, { name: 'WALKEEPER_TLS_KEY', value: `${TLS_MOUNT}/tls.key` });
    volumeMounts.push({ name: 'tls', mountPath: TLS_MOUNT, readOnly: true });
    volumes.push({
      name: 'tls',
      secret: {
        secretName: sk.spec.tls.secretRef.name,
        items: [
          { key: 'tls.crt', path: 'tls.crt' },
          { key: 'tls.key', path: 'tls.key' },
        ],
      },
    });
  }
  const scheme = sk.spec.tls ? { scheme: 'HTTPS' } : {};
  const annotations: Record<string, string> = { [ANNOTATION_CONFIG_HASH]: configHash };
  const restartedAt = sk.metadata.annotations?.[ANNOTATION_RESTARTED_AT];
  if (restartedAt) annotations[ANNOTATION_RESTARTED_AT] = restartedAt;

  const spec: Json = {
    securityContext: {
      runAsNonRoot: true,
      runAsUser: SAFEKEEPER_UID,
      runAsGroup: SAFEKEEPER_UID,
      fsGroup: SAFEKEEPER_UID,
      seccompProfile: { type: 'RuntimeDefault' },
    },
    terminationGracePeriodSeconds: 30,
    containers: [
      {
        name: 'safekeeper',
        image: sk.spec.image,
        command,
        envFrom: [{ configMapRef: { name: names.safekeeperConfigMap(name) } }],
        ...(env.length ? { env } : {}),
        ports: [
          { name: 'pg', containerPort: ports.safekeeperPg, protocol: 'TCP' },
          { name: 'http', containerPort: ports.safekeeperHttp, protocol: 'TCP' },
        ],
        livenessProbe: {
          httpGet: { path: '/healthz', port: ports.safekeeperHttp, ...scheme },
          periodSeconds: 10,
          timeoutSeconds: 2,
          failureThreshold: 6,
        },
        readinessProbe: {
          httpGet: { path: '/readyz', port: ports.safekeeperHttp, ...scheme },
          periodSeconds: 5,
          timeoutSeconds: 2,
          failureThreshold: 3,
        },
        ...(sk.spec.resources ? { resources: sk.spec.resources } : {}),
        securityContext: containerSecurityContext(),
        volumeMounts,
      },
    ],
    volumes,
    // Default spread: members in different zones (and hosts) when possible, never blocking scheduling.
    topologySpreadConstraints: [
      { maxSkew: 1, topologyKey: 'topology.kubernetes.io/zone', whenUnsatisfiable: 'ScheduleAnyway', labelSelector: { matchLabels: selector } },
      { maxSkew: 1, topologyKey: 'kubernetes.io/hostname', whenUnsatisfiable: 'ScheduleAnyway', labelSelector: { matchLabels: selector } },
    ],
    ...(sk.spec.nodeSelector ? { nodeSelector: sk.spec.nodeSelector } : {}),
    ...(sk.spec.tolerations ? { tolerations: sk.spec.tolerations } : {}),
    ...(sk.spec.affinity ? { affinity: sk.spec.affinity } : {}),
  };
  return { metadata: { labels: standardLabels('safekeeper', name, { [LABEL_CLUSTER]: name }), annotations }, spec };
}

/** The hash of the pod template a member must run; a pod whose annotation differs is outdated. */
export function templateHash(template: { metadata: KubeObject['metadata']; spec: Json }): string {
  return shortHash(template);
}

export function buildStatefulSet(sk: Safekeeper, opts: SafekeeperBuildOptions = defaultBuildOptions): StatefulSetLike {
  const name = sk.metadata.name ?? '';
  const configHash = shortHash(buildConfigMap(sk, opts).data);
  const template = podTemplate(sk, configHash);
  const hash = templateHash(template);
  template.metadata.annotations = { ...template.metadata.annotations, [ANNOTATION_TEMPLATE_HASH]: hash };
  return {
    apiVersion: 'apps/v1',
    kind: 'StatefulSet',
    metadata: { ...meta(sk, names.safekeeperStatefulSet(name)), annotations: { [ANNOTATION_TEMPLATE_HASH]: hash } },
    spec: {
      replicas: sk.spec.replicas,
      serviceName: names.safekeeperHeadlessService(name),
      selector: { matchLabels: selectorLabels('safekeeper', name) },
      // Peers with no bootstrap order: all members start together so a majority forms quickly,
      // and a full outage never waits on member 0's readiness. Restarts are ours (OnDelete).
      podManagementPolicy: 'Parallel',
      updateStrategy: { type: 'OnDelete' },
      template,
      volumeClaimTemplates: [
        {
          apiVersion: 'v1',
          kind: 'PersistentVolumeClaim',
          metadata: { name: 'data', labels: selectorLabels('safekeeper', name) },
          spec: {
            accessModes: ['ReadWriteOnce'],
            resources: { requests: { storage: sk.spec.storage.size } },
            ...(sk.spec.storage.storageClassName ? { storageClassName: sk.spec.storage.storageClassName } : {}),
          },
        },
      ],
    },
  };
}

/** Revision of the pod template a StatefulSet (or pod) carries, from its annotation. */
export function revisionOf(obj: { metadata?: KubeObject['metadata'] } | undefined): string | undefined {
  return obj?.metadata?.annotations?.[ANNOTATION_TEMPLATE_HASH];
}

export function buildSafekeeperChildren(sk: Safekeeper, opts: SafekeeperBuildOptions = defaultBuildOptions): KubeObject[] {
  return [buildConfigMap(sk, opts), buildHeadlessService(sk), buildClientService(sk), buildPodDisruptionBudget(sk), buildStatefulSet(sk, opts)];
}
