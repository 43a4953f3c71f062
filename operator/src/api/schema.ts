// The one schema source for the walkeeper.io/v1alpha1 custom resources (Safekeeper, Tenant):
// typebox schemas from which the TypeScript types, the CRD openAPIV3Schema and the ajv validators derive.
// (Over 400 lines: it is the one schema source of both resources; splitting it would give the CRD
// two sources to drift apart.)
import { Type, type Static, type TSchema } from '@sinclair/typebox';

export const GROUP = 'walkeeper.io';
export const VERSION = 'v1alpha1';
export const API_VERSION = `${GROUP}/${VERSION}`;

export const DEFAULT_IMAGE = 'ghcr.io/walkeeper/walkeeper:0.1.0';
export const DEFAULT_COMPUTE_IMAGE = 'postgres:15';
export const DEFAULT_STORAGE_SIZE = '10Gi';
export const DEFAULT_REPLICAS = 3;

/** Names this repository reserves in annotations, labels and finalizers. */
export const ANNOTATION_RESTARTED_AT = 'walkeeper.io/restartedAt';
export const ANNOTATION_TEMPLATE_HASH = 'walkeeper.io/template-hash';
export const ANNOTATION_CONFIG_HASH = 'walkeeper.io/config-hash';
export const TENANT_FINALIZER = 'walkeeper.io/tenant-cleanup';
export const HEX32_PATTERN = '^[0-9a-f]{32}$';

// ---- shared pieces ---------------------------------------------------------------------------

/**
 * A Kubernetes quantity (int-or-string), as `resources.limits`/`requests` values are. A structural
 * schema allows `anyOf` only in exactly this form, `[{type: integer}, {type: string}]`; anything more
 * inside an item (a pattern) makes the API server refuse the CRD, so the pattern sits beside `anyOf`
 * (it applies to string values only), as core/v1's own Quantity does.
 */
const Quantity = Type.Unsafe<string | number>({
  'x-kubernetes-int-or-string': true,
  anyOf: [{ type: 'integer' }, { type: 'string' }],
  pattern: '^[+]?[0-9.]+([eE][-+]?[0-9]+|[numkMGTPE]i?)?$',
});

const QuantityMap = Type.Unsafe<Record<string, string | number>>({ type: 'object', additionalProperties: Quantity });

export const ResourceRequirements = Type.Object(
  {
    limits: Type.Optional(QuantityMap),
    requests: Type.Optional(QuantityMap),
  },
  { description: 'Compute resources of the container (core/v1 ResourceRequirements).' },
);

const StringMap = (description: string) =>
  Type.Unsafe<Record<string, string>>({ type: 'object', additionalProperties: { type: 'string' }, description });

/** Pod placement objects are passed through verbatim; their schema is core/v1's, not ours. */
const PassThroughObject = (description: string) =>
  Type.Unsafe<Record<string, unknown>>({ type: 'object', 'x-kubernetes-preserve-unknown-fields': true, description });

const Toleration = Type.Object({
  key: Type.Optional(Type.String()),
  operator: Type.Optional(Type.String({ enum: ['Exists', 'Equal'] })),
  value: Type.Optional(Type.String()),
  effect: Type.Optional(Type.String({ enum: ['NoSchedule', 'PreferNoSchedule', 'NoExecute'] })),
  tolerationSeconds: Type.Optional(Type.Integer()),
});

export const Condition = Type.Object(
  {
    type: Type.String({ maxLength: 316 }),
    status: Type.String({ enum: ['True', 'False', 'Unknown'] }),
    reason: Type.String({ maxLength: 1024, pattern: '^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$' }),
    message: Type.String({ maxLength: 32768 }),
    lastTransitionTime: Type.String({ format: 'date-time' }),
    observedGeneration: Type.Optional(Type.Integer({ minimum: 0 })),
  },
  { required: ['type', 'status', 'reason', 'message', 'lastTransitionTime'] },
);
export type Condition = Static<typeof Condition>;

const Immutable = (message: string) => ({ 'x-kubernetes-validations': [{ rule: 'self == oldSelf', message }] });

// ---- Safekeeper -----------------------------------------------------------------------------

/** A size as PostgreSQL settings write it (the units of wal_keep_size), as the safekeeper's flags take it. */
const PG_SIZE_BODY = '[0-9]+(B|kB|MB|GB|TB)';
const PG_SIZE_PATTERN = `^${PG_SIZE_BODY}$`;

const SecretRef = (description: string) => Type.Object({ name: Type.String({ minLength: 1 }) }, { description });

/** Where the members offload committed WAL (the safekeeper's --remote-storage flags). */
const RemoteStorage = Type.Object(
  {
    url: Type.String({
      description: 's3://bucket/prefix for an S3-compatible store, or file:///dir (a directory every member mounts).',
      pattern: '^(s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?|file:///.+)$',
    }),
    endpoint: Type.Optional(Type.String({ description: 'S3 endpoint URL (http(s)://host:port); unset: AWS for the region.', pattern: '^https?://.+' })),
    region: Type.Optional(Type.String({ minLength: 1, description: 'S3 region (default us-east-1).' })),
    pathStyle: Type.Optional(Type.Boolean({ description: 'Path-style addressing (endpoint/bucket/key), which most S3-compatible stores need.' })),
    checksum: Type.Optional(
      Type.String({
        enum: ['when_supported', 'when_required'],
        description: 'When the S3 client adds request checksums: when_supported (the SDK default) or when_required (for S3-compatible stores that refuse them).',
      }),
    ),
    credentials: Type.Optional(
      Type.Object(
        { secretRef: SecretRef('Secret with keys AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and optionally AWS_SESSION_TOKEN).') },
        { required: ['secretRef'], description: 'Unset: the SDK\'s default credential chain (e.g. a pod identity).' },
      ),
    ),
  },
  {
    required: ['url'],
    description: 'Object storage the members offload committed WAL to; WAL leaves a member\'s disk only once it is there.',
    'x-kubernetes-validations': [
      { rule: "self.url.startsWith('s3://') || (!has(self.endpoint) && !has(self.region) && !has(self.pathStyle) && !has(self.checksum) && !has(self.credentials))", message: 'endpoint, region, pathStyle, checksum and credentials apply only to an s3:// url' },
    ],
  },
);

export const SafekeeperSpec = Type.Object(
  {
    replicas: Type.Integer({
      description: 'Number of safekeepers (odd: 1, 3, 5 or 7). Immutable until membership change exists.',
      enum: [1, 3, 5, 7],
      default: DEFAULT_REPLICAS,
      ...Immutable('replicas is immutable: membership change is not supported yet'),
    }),
    image: Type.String({ description: 'Data-plane container image.', default: DEFAULT_IMAGE, minLength: 1 }),
    storage: Type.Object(
      {
        size: Type.String({
          description: 'Size of each member\'s persistent volume (grow-only).',
          default: DEFAULT_STORAGE_SIZE,
          pattern: '^[0-9]+(\\.[0-9]+)?([KMGTPE]i?)?$',
        }),
        storageClassName: Type.Optional(Type.String({ description: 'StorageClass of the volumes; cluster default when unset.' })),
      },
      { default: {}, ...Immutable('storage is immutable: volumeClaimTemplates cannot change after creation') },
    ),
    resources: Type.Optional(ResourceRequirements),
    auth: Type.Optional(
      Type.Object(
        {
          secretRef: Type.Object(
            { name: Type.String({ minLength: 1 }) },
            { description: 'Secret with keys public.pem (JWT public key, mounted in pods) and admin-token (used by the operator).' },
          ),
        },
        { required: ['secretRef'] },
      ),
    ),
    tls: Type.Optional(
      Type.Object(
        {
          secretRef: Type.Object(
            { name: Type.String({ minLength: 1 }) },
            {
              description:
                'Secret with keys tls.crt and tls.key (the safekeepers\' certificate, valid for *.<name>-headless.<namespace>.svc.<cluster domain>) and ca.crt (the CA the proposers and the operator verify it against).',
            },
          ),
        },
        { required: ['secretRef'], description: 'When set, both safekeeper ports require TLS.' },
      ),
    ),
    nodeSelector: Type.Optional(StringMap('Node labels the pods must match.')),
    tolerations: Type.Optional(Type.Array(Toleration, { description: 'Pod tolerations (core/v1 Toleration).' })),
    affinity: Type.Optional(PassThroughObject('Pod affinity (core/v1 Affinity), passed through verbatim.')),
    remoteStorage: Type.Optional(RemoteStorage),
    walKeepSize: Type.Optional(
      Type.String({
        description:
          'WAL each member keeps below the commit LSN even when nothing else needs it (PostgreSQL units: 64MB, 1GB). Unset: the safekeeper default.',
        pattern: PG_SIZE_PATTERN,
      }),
    ),
    maxSlotWalKeepSize: Type.Optional(
      Type.String({
        description:
          'Most WAL a reader\'s replication slot may hold below the commit LSN (64MB, 1GB; -1 = unlimited, the default); a slot further behind is invalidated and its reader told why.',
        pattern: `^(-1|${PG_SIZE_BODY})$`,
      }),
    ),
  },
  { required: ['replicas', 'image', 'storage'] },
);
export type SafekeeperSpec = Static<typeof SafekeeperSpec>;

export const SafekeeperMemberStatus = Type.Object(
  {
    name: Type.String(),
    ready: Type.Boolean(),
    revision: Type.Optional(Type.String()),
    timelines: Type.Integer({ minimum: 0, description: 'Timelines this member holds.' }),
    caughtUp: Type.Boolean({ description: 'Within the lag threshold of the commit LSN on every timeline.' }),
    disk: Type.Optional(
      Type.Object(
        {
          usedBytes: Type.Integer({ minimum: 0 }),
          totalBytes: Type.Integer({ minimum: 0 }),
          highWater: Type.Boolean({ description: 'Use is past the member\'s high-water mark: WAL removal is held or the volume is too small.' }),
        },
        { required: ['usedBytes', 'totalBytes', 'highWater'], description: 'The member\'s data volume, as the safekeeper reports it.' },
      ),
    ),
    lastError: Type.Optional(Type.String()),
  },
  { required: ['name', 'ready', 'timelines', 'caughtUp'] },
);
export type SafekeeperMemberStatus = Static<typeof SafekeeperMemberStatus>;

export const SafekeeperStatus = Type.Object({
  observedGeneration: Type.Optional(Type.Integer()),
  replicas: Type.Optional(Type.Integer()),
  readyReplicas: Type.Optional(Type.Integer()),
  updatedReplicas: Type.Optional(Type.Integer()),
  revision: Type.Optional(Type.String({ description: 'Pod template hash the members are rolled to.' })),
  members: Type.Optional(Type.Array(SafekeeperMemberStatus)),
  quorum: Type.Optional(
    Type.Object(
      {
        size: Type.Integer(),
        required: Type.Integer(),
        available: Type.Integer(),
        status: Type.String({ enum: ['Healthy', 'Degraded', 'Lost'] }),
      },
      { required: ['size', 'required', 'available', 'status'] },
    ),
  ),
  conditions: Type.Optional(Type.Array(Condition)),
});
export type SafekeeperStatus = Static<typeof SafekeeperStatus>;

// ---- Tenant ---------------------------------------------------------------------------------

/**
 * Five cron fields (minute hour day-of-month month day-of-week) or a macro such as `@daily`, as a
 * CronJob's schedule; the operator parses it fully and reports a schedule that does not parse.
 */
const CRON_PATTERN = '^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|\\S+\\s+\\S+\\s+\\S+\\s+\\S+\\s+\\S+)$';

export const TenantBackupSpec = Type.Object(
  {
    schedule: Type.String({ pattern: CRON_PATTERN, description: 'When to take a base backup, in cron syntax (UTC), e.g. "0 3 * * *".' }),
    retention: Type.Optional(
      Type.Object(
        {
          keep: Type.Optional(Type.Integer({ minimum: 1, description: 'Full backups to keep.' })),
          maxAgeDays: Type.Optional(Type.Integer({ minimum: 1, description: 'Delete backups older than this many days.' })),
        },
        {
          description:
            'Old backups, and the WAL in the bucket older than the oldest kept backup, are deleted after each successful backup. The newest good backup is never deleted.',
        },
      ),
    ),
    suspend: Type.Optional(Type.Boolean({ description: 'Take no scheduled backups while true (existing ones are kept).' })),
  },
  { required: ['schedule'], description: 'Scheduled base backups to the Safekeeper\'s remote storage (which it must have).' },
);
export type TenantBackupSpec = Static<typeof TenantBackupSpec>;

export const TenantRecovery = Type.Object(
  {
    source: Type.Object(
      { tenantRef: Type.Object({ name: Type.String({ minLength: 1 }) }, { description: 'A Tenant (same namespace, same Safekeeper) whose backups and WAL this one starts from.' }) },
      { required: ['tenantRef'] },
    ),
    targetTime: Type.Optional(
      Type.String({ format: 'date-time', description: 'Recover the source up to this time (RFC 3339): PostgreSQL stops before the first commit after it, so it must lie before the source\'s last commit.' }),
    ),
    targetLSN: Type.Optional(Type.String({ pattern: '^[0-9A-Fa-f]{1,8}/[0-9A-Fa-f]{1,8}$', description: 'Recover the source up to this LSN (X/X), which must lie before the source\'s last commit.' })),
  },
  {
    required: ['source'],
    description:
      'Start this tenant\'s database as a copy of another tenant\'s at a point (point-in-time recovery into a new tenant): its compute is restored from the source\'s newest base backup before the target, replays the source\'s WAL to the target and promotes onto a new PostgreSQL timeline, whose WAL goes to this tenant\'s own timeline. The source is only read.',
    'x-kubernetes-validations': [{ rule: 'has(self.targetTime) != has(self.targetLSN)', message: 'give exactly one of targetTime and targetLSN: the copy promotes itself there' }],
  },
);
export type TenantRecovery = Static<typeof TenantRecovery>;

export const TenantBootstrap = Type.Object(
  { recovery: Type.Optional(TenantRecovery) },
  { description: 'How the tenant\'s database begins; unset: initdb. Fixed at creation.', ...Immutable('bootstrap is immutable: it is fixed when the Tenant is created') },
);
export type TenantBootstrap = Static<typeof TenantBootstrap>;


export const TenantSpec = Type.Object(
  {
    tenantId: Type.Optional(
      Type.String({ pattern: HEX32_PATTERN, description: '32 lowercase hex characters; generated (and kept in status) when unset.' }),
    ),
    safekeeperRef: Type.Object(
      { name: Type.String({ minLength: 1 }) },
      { description: 'The Safekeeper cluster (same namespace) holding this tenant\'s WAL.', ...Immutable('safekeeperRef is immutable') },
    ),
    compute: Type.Object(
      {
        enabled: Type.Boolean({ default: true }),
        image: Type.String({ default: DEFAULT_COMPUTE_IMAGE, minLength: 1 }),
        storage: Type.Object(
          {
            size: Type.String({ default: DEFAULT_STORAGE_SIZE, pattern: '^[0-9]+(\\.[0-9]+)?([KMGTPE]i?)?$' }),
            storageClassName: Type.Optional(Type.String()),
          },
          { default: {} },
        ),
        resources: Type.Optional(ResourceRequirements),
        postgresParameters: Type.Optional(StringMap('Extra PostgreSQL settings, passed as -c name=value.')),
      },
      { default: {} },
    ),
    backup: Type.Optional(TenantBackupSpec),
    bootstrap: Type.Optional(TenantBootstrap),
  },
  {
    required: ['safekeeperRef', 'compute'],
    'x-kubernetes-validations': [
      {
        rule: 'has(self.tenantId) == has(oldSelf.tenantId) && (!has(self.tenantId) || self.tenantId == oldSelf.tenantId)',
        message: 'tenantId is immutable: it cannot be added, changed or removed after creation',
      },
      { rule: 'has(self.bootstrap) == has(oldSelf.bootstrap)', message: 'bootstrap is immutable: it cannot be added or removed after creation' },
    ],
  },
);
export type TenantSpec = Static<typeof TenantSpec>;

export const TenantMemberStatus = Type.Object(
  {
    name: Type.String(),
    registered: Type.Boolean(),
    flushLsn: Type.Optional(Type.String()),
    lagBytes: Type.Optional(Type.Integer({ minimum: 0 })),
    backupLsn: Type.Optional(Type.String({ description: 'Everything below is in remote storage (as this member knows it).' })),
    localStartLsn: Type.Optional(Type.String({ description: 'First LSN still on the member\'s disk.' })),
    lastError: Type.Optional(Type.String()),
  },
  { required: ['name', 'registered'] },
);
export type TenantMemberStatus = Static<typeof TenantMemberStatus>;

export const TenantStatus = Type.Object({
  observedGeneration: Type.Optional(Type.Integer()),
  tenantId: Type.Optional(Type.String({ pattern: HEX32_PATTERN })),
  timelineId: Type.Optional(Type.String({ pattern: HEX32_PATTERN })),
  commitLsn: Type.Optional(Type.String()),
  offload: Type.Optional(
    Type.Object(
      {
        backupLsn: Type.String({ description: 'Highest backup LSN any member reports: WAL below it is in remote storage.' }),
        lagBytes: Type.Integer({ minimum: 0, description: 'Committed WAL not yet in remote storage (commit LSN minus backup LSN).' }),
      },
      { required: ['backupLsn', 'lagBytes'], description: 'Present when the Safekeeper has remote storage.' },
    ),
  ),
  members: Type.Optional(Type.Array(TenantMemberStatus)),
  quorum: Type.Optional(
    Type.Object(
      { members: Type.Integer(), caughtUp: Type.Integer(), healthy: Type.Boolean() },
      { required: ['members', 'caughtUp', 'healthy'] },
    ),
  ),
  backup: Type.Optional(
    Type.Object(
      {
        lastScheduleTime: Type.Optional(Type.String({ format: 'date-time', description: 'When the last scheduled backup was started.' })),
        nextScheduleTime: Type.Optional(Type.String({ format: 'date-time' })),
        running: Type.Optional(Type.String({ description: 'Id of the backup in progress.' })),
        lastSuccessful: Type.Optional(
          Type.Object(
            {
              id: Type.String(),
              startLsn: Type.String(),
              stopLsn: Type.String(),
              completedAt: Type.String({ format: 'date-time' }),
              sizeBytes: Type.Integer({ minimum: 0 }),
            },
            { required: ['id', 'startLsn', 'stopLsn', 'completedAt', 'sizeBytes'] },
          ),
        ),
        firstRecoverablePoint: Type.Optional(
          Type.Object(
            { time: Type.String({ format: 'date-time' }), lsn: Type.String() },
            { required: ['time', 'lsn'], description: 'The earliest point a restore can reach: the end of the oldest complete backup.' },
          ),
        ),
        backups: Type.Optional(Type.Integer({ minimum: 0, description: 'Complete backups in the bucket.' })),
        lastFailure: Type.Optional(
          Type.Object(
            { time: Type.String({ format: 'date-time' }), reason: Type.String(), message: Type.String() },
            { required: ['time', 'reason', 'message'] },
          ),
        ),
      },
      { description: 'Present when spec.backup is set.' },
    ),
  ),
  recoveredFrom: Type.Optional(
    Type.Object(
      { tenant: Type.String(), tenantId: Type.String({ pattern: HEX32_PATTERN }), timelineId: Type.String({ pattern: HEX32_PATTERN }) },
      { required: ['tenant', 'tenantId', 'timelineId'], description: 'The recovery source as resolved when the Tenant was created (spec.bootstrap.recovery); kept when the source is later deleted.' },
    ),
  ),
  compute: Type.Optional(
    Type.Object(
      {
        ready: Type.Boolean(),
        service: Type.Optional(Type.String()),
        secret: Type.Optional(Type.String()),
        proposer: Type.Optional(Type.String({ description: 'State reported by the proposer sidecar.' })),
      },
      { required: ['ready'] },
    ),
  ),
  conditions: Type.Optional(Type.Array(Condition)),
});
export type TenantStatus = Static<typeof TenantStatus>;

// ---- object envelopes -------------------------------------------------------------------------

export interface ObjectMeta {
  name?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  finalizers?: string[];
  ownerReferences?: OwnerReference[];
}
export interface OwnerReference {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
  controller?: boolean;
  blockOwnerDeletion?: boolean;
}

export interface Safekeeper {
  apiVersion: typeof API_VERSION;
  kind: 'Safekeeper';
  metadata: ObjectMeta;
  spec: SafekeeperSpec;
  status?: SafekeeperStatus;
}
export interface Tenant {
  apiVersion: typeof API_VERSION;
  kind: 'Tenant';
  metadata: ObjectMeta;
  spec: TenantSpec;
  status?: TenantStatus;
}

export const schemas: Record<'Safekeeper' | 'Tenant', { spec: TSchema; status: TSchema }> = {
  Safekeeper: { spec: SafekeeperSpec, status: SafekeeperStatus },
  Tenant: { spec: TenantSpec, status: TenantStatus },
};
