// Resource types served by the harness: built-in kinds and those defined by CRDs.
import type { KObject } from './util.js';

export interface PrinterColumn {
  name: string;
  type: string;
  jsonPath: string;
  format?: string;
  description?: string;
  priority?: number;
}

export interface ScaleSpec {
  specReplicasPath: string;
  statusReplicasPath: string;
  labelSelectorPath?: string;
}

export interface ResourceType {
  group: string;
  version: string;
  /** other versions served from the same storage */
  versions: string[];
  resource: string;
  kind: string;
  listKind: string;
  singular: string;
  namespaced: boolean;
  shortNames: string[];
  categories: string[];
  status: boolean;
  scale?: ScaleSpec;
  /** metadata.generation maintained */
  generation: boolean;
  custom: boolean;
  /** CRD openAPIV3Schema per version */
  schemas?: Record<string, unknown>;
  printerColumns?: Record<string, PrinterColumn[]>;
  preserveUnknown?: boolean;
  verbs: string[];
}

const ALL_VERBS = ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch'];

function b(
  group: string,
  version: string,
  resource: string,
  kind: string,
  opts: Partial<Pick<ResourceType, 'namespaced' | 'shortNames' | 'status' | 'generation' | 'categories' | 'scale'>> = {},
): ResourceType {
  return {
    group,
    version,
    versions: [version],
    resource,
    kind,
    listKind: `${kind}List`,
    singular: kind.toLowerCase(),
    namespaced: opts.namespaced ?? true,
    shortNames: opts.shortNames ?? [],
    categories: opts.categories ?? [],
    status: opts.status ?? false,
    scale: opts.scale,
    generation: opts.generation ?? false,
    custom: false,
    verbs: ALL_VERBS,
  };
}

const replicasScale: ScaleSpec = { specReplicasPath: '.spec.replicas', statusReplicasPath: '.status.replicas', labelSelectorPath: '.spec.selector' };

export function builtinTypes(): ResourceType[] {
  return [
    b('', 'v1', 'namespaces', 'Namespace', { namespaced: false, shortNames: ['ns'], status: true }),
    b('', 'v1', 'configmaps', 'ConfigMap', { shortNames: ['cm'] }),
    b('', 'v1', 'secrets', 'Secret'),
    b('', 'v1', 'services', 'Service', { shortNames: ['svc'], status: true, categories: ['all'] }),
    b('', 'v1', 'endpoints', 'Endpoints', { shortNames: ['ep'] }),
    b('', 'v1', 'pods', 'Pod', { shortNames: ['po'], status: true, categories: ['all'] }),
    b('', 'v1', 'persistentvolumeclaims', 'PersistentVolumeClaim', { shortNames: ['pvc'], status: true }),
    b('', 'v1', 'persistentvolumes', 'PersistentVolume', { namespaced: false, shortNames: ['pv'], status: true }),
    b('', 'v1', 'events', 'Event', { shortNames: ['ev'] }),
    b('', 'v1', 'serviceaccounts', 'ServiceAccount', { shortNames: ['sa'] }),
    b('', 'v1', 'nodes', 'Node', { namespaced: false, shortNames: ['no'], status: true }),
    b('apps', 'v1', 'statefulsets', 'StatefulSet', { shortNames: ['sts'], status: true, generation: true, categories: ['all'], scale: replicasScale }),
    b('apps', 'v1', 'deployments', 'Deployment', { shortNames: ['deploy'], status: true, generation: true, categories: ['all'], scale: replicasScale }),
    b('apps', 'v1', 'replicasets', 'ReplicaSet', { shortNames: ['rs'], status: true, generation: true, categories: ['all'], scale: replicasScale }),
    b('apps', 'v1', 'controllerrevisions', 'ControllerRevision'),
    b('policy', 'v1', 'poddisruptionbudgets', 'PodDisruptionBudget', { shortNames: ['pdb'], status: true, generation: true }),
    b('coordination.k8s.io', 'v1', 'leases', 'Lease'),
    b('events.k8s.io', 'v1', 'events', 'Event', { shortNames: ['ev'] }),
    b('rbac.authorization.k8s.io', 'v1', 'roles', 'Role'),
    b('rbac.authorization.k8s.io', 'v1', 'rolebindings', 'RoleBinding'),
    b('rbac.authorization.k8s.io', 'v1', 'clusterroles', 'ClusterRole', { namespaced: false }),
    b('rbac.authorization.k8s.io', 'v1', 'clusterrolebindings', 'ClusterRoleBinding', { namespaced: false }),
    b('apiextensions.k8s.io', 'v1', 'customresourcedefinitions', 'CustomResourceDefinition', {
      namespaced: false,
      shortNames: ['crd', 'crds'],
      status: true,
      generation: true,
      categories: ['api-extensions'],
    }),
  ];
}

/** Storage key of a resource type: events.k8s.io events share core events' storage. */
export function storageKey(t: { group: string; resource: string }): string {
  if (t.group === 'events.k8s.io' && t.resource === 'events') return '/events';
  return `${t.group}/${t.resource}`;
}

interface CrdVersion {
  name: string;
  served?: boolean;
  storage?: boolean;
  schema?: { openAPIV3Schema?: unknown };
  subresources?: { status?: unknown; scale?: ScaleSpec };
  additionalPrinterColumns?: PrinterColumn[];
}

/** The resource type a CRD defines (one entry serving all its served versions). */
export function typeFromCrd(crd: KObject): ResourceType {
  const spec = crd.spec as {
    group: string;
    names: { kind: string; plural: string; singular?: string; shortNames?: string[]; listKind?: string; categories?: string[] };
    scope: string;
    versions: CrdVersion[];
    preserveUnknownFields?: boolean;
  };
  const served = spec.versions.filter((v) => v.served !== false);
  const storage = spec.versions.find((v) => v.storage) ?? served[0]!;
  const schemas: Record<string, unknown> = {};
  const cols: Record<string, PrinterColumn[]> = {};
  for (const v of spec.versions) {
    schemas[v.name] = v.schema?.openAPIV3Schema;
    cols[v.name] = v.additionalPrinterColumns ?? [];
  }
  return {
    group: spec.group,
    version: storage.name,
    versions: served.map((v) => v.name),
    resource: spec.names.plural,
    kind: spec.names.kind,
    listKind: spec.names.listKind ?? `${spec.names.kind}List`,
    singular: spec.names.singular ?? spec.names.kind.toLowerCase(),
    namespaced: spec.scope !== 'Cluster',
    shortNames: spec.names.shortNames ?? [],
    categories: spec.names.categories ?? [],
    status: storage.subresources?.status !== undefined,
    scale: storage.subresources?.scale,
    generation: true,
    custom: true,
    schemas,
    printerColumns: cols,
    preserveUnknown: spec.preserveUnknownFields === true,
    verbs: ALL_VERBS,
  };
}

export function gvString(group: string, version: string): string {
  return group ? `${group}/${version}` : version;
}
