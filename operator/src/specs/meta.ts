// Names, standard labels, owner references and stable hashing shared by the pure builders.
import { createHash } from 'node:crypto';
import { API_VERSION, type ObjectMeta, type OwnerReference } from '../api/schema.js';

export const MANAGED_BY = 'walkeeper-operator';
export const LABEL_CLUSTER = 'walkeeper.io/safekeeper';
export const LABEL_TENANT = 'walkeeper.io/tenant';

export interface Owner {
  kind: 'Safekeeper' | 'Tenant';
  metadata: ObjectMeta;
}

export function ownerReference(owner: Owner): OwnerReference {
  return {
    apiVersion: API_VERSION,
    kind: owner.kind,
    name: owner.metadata.name ?? '',
    uid: owner.metadata.uid ?? '',
    controller: true,
    blockOwnerDeletion: true,
  };
}

/** Labels that select one component instance; stable for the life of the object (used in selectors). */
export function selectorLabels(component: 'safekeeper' | 'compute', instance: string): Record<string, string> {
  return {
    'app.kubernetes.io/name': 'walkeeper',
    'app.kubernetes.io/instance': instance,
    'app.kubernetes.io/component': component,
  };
}

export function standardLabels(component: 'safekeeper' | 'compute', instance: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    ...selectorLabels(component, instance),
    'app.kubernetes.io/part-of': 'walkeeper',
    'app.kubernetes.io/managed-by': MANAGED_BY,
    ...extra,
  };
}

/** JSON with sorted keys, so equal objects hash equally whatever their key order. */
export function stableStringify(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(stableStringify).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${stableStringify(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

export function shortHash(value: unknown, length = 12): string {
  return createHash('sha256').update(stableStringify(value)).digest('hex').slice(0, length);
}

export const names = {
  safekeeperStatefulSet: (sk: string) => sk,
  safekeeperHeadlessService: (sk: string) => `${sk}-headless`,
  safekeeperClientService: (sk: string) => sk,
  safekeeperPdb: (sk: string) => sk,
  safekeeperConfigMap: (sk: string) => `${sk}-config`,
  safekeeperPod: (sk: string, ordinal: number) => `${sk}-${ordinal}`,
  computeStatefulSet: (tenant: string) => `${tenant}-compute`,
  computeService: (tenant: string) => `${tenant}-compute`,
  computeSecret: (tenant: string) => `${tenant}-credentials`,
  computePod: (tenant: string) => `${tenant}-compute-0`,
};

/** Ports of the data plane (ARCHITECTURE §3). */
export const ports = { safekeeperPg: 5454, safekeeperHttp: 7676, proposerHttp: 7677, postgres: 5432 };

/** The DNS name of a safekeeper member through the headless Service. */
export function memberFqdn(sk: string, namespace: string, ordinal: number, clusterDomain: string): string {
  return `${names.safekeeperPod(sk, ordinal)}.${names.safekeeperHeadlessService(sk)}.${namespace}.svc.${clusterDomain}`;
}
