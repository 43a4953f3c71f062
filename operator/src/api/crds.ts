// Builds the two CustomResourceDefinitions from the typebox schema source (pure; no I/O).
import { GROUP, VERSION, SafekeeperSpec, SafekeeperStatus, TenantSpec, TenantStatus } from './schema.js';
import type { TSchema } from '@sinclair/typebox';

export interface CustomResourceDefinition {
  apiVersion: 'apiextensions.k8s.io/v1';
  kind: 'CustomResourceDefinition';
  metadata: { name: string; labels?: Record<string, string> };
  spec: {
    group: string;
    names: { kind: string; listKind: string; plural: string; singular: string; shortNames: string[]; categories: string[] };
    scope: 'Namespaced';
    versions: Array<{
      name: string;
      served: boolean;
      storage: boolean;
      schema: { openAPIV3Schema: Record<string, unknown> };
      subresources: { status: Record<string, never> };
      additionalPrinterColumns: Array<{ name: string; type: string; jsonPath: string; description?: string; priority?: number }>;
    }>;
  };
}

/** typebox schemas carry symbol keys; a JSON round trip leaves the plain JSON Schema. */
function plain(schema: TSchema): Record<string, unknown> {
  return withoutRequiredDefaults(JSON.parse(JSON.stringify(schema)) as Record<string, unknown>);
}

type Node = Record<string, unknown>;
const isNode = (v: unknown): v is Node => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * A field the API server defaults is never missing once stored, so the TypeScript types keep it
 * required; but in the CRD it must not be `required`: kubectl's client-side validation (and a
 * `default: {}` on the parent, which the server validates against the schema as written, before
 * nested defaults apply) would refuse a spec that leaves it out. Drops every defaulted property
 * from its object's `required`, at every depth (in place; returns the node).
 */
export function withoutRequiredDefaults(node: Node): Node {
  const props = isNode(node.properties) ? node.properties : undefined;
  if (props) {
    for (const child of Object.values(props)) if (isNode(child)) withoutRequiredDefaults(child);
    if (Array.isArray(node.required)) {
      const required = (node.required as string[]).filter((k) => !(isNode(props[k]) && props[k].default !== undefined));
      if (required.length) node.required = required;
      else delete node.required;
    }
  }
  if (isNode(node.items)) withoutRequiredDefaults(node.items);
  if (isNode(node.additionalProperties)) withoutRequiredDefaults(node.additionalProperties);
  for (const k of ['anyOf', 'allOf', 'oneOf']) {
    if (Array.isArray(node[k])) for (const child of node[k] as unknown[]) if (isNode(child)) withoutRequiredDefaults(child);
  }
  if (isNode(node.not)) withoutRequiredDefaults(node.not);
  return node;
}

function rootSchema(description: string, spec: TSchema, status: TSchema): Record<string, unknown> {
  return {
    type: 'object',
    description,
    properties: {
      apiVersion: { type: 'string' },
      kind: { type: 'string' },
      metadata: { type: 'object' },
      spec: plain(spec),
      status: plain(status),
    },
    required: ['spec'],
  };
}

function crd(
  kind: string,
  plural: string,
  shortNames: string[],
  description: string,
  spec: TSchema,
  status: TSchema,
  columns: CustomResourceDefinition['spec']['versions'][number]['additionalPrinterColumns'],
): CustomResourceDefinition {
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `${plural}.${GROUP}`, labels: { 'app.kubernetes.io/part-of': 'walkeeper' } },
    spec: {
      group: GROUP,
      names: { kind, listKind: `${kind}List`, plural, singular: kind.toLowerCase(), shortNames, categories: ['walkeeper'] },
      scope: 'Namespaced',
      versions: [
        {
          name: VERSION,
          served: true,
          storage: true,
          schema: { openAPIV3Schema: rootSchema(description, spec, status) },
          subresources: { status: {} },
          additionalPrinterColumns: columns,
        },
      ],
    },
  };
}

export function safekeeperCrd(): CustomResourceDefinition {
  return crd('Safekeeper', 'safekeepers', ['sk'], 'A quorum-replicated cluster of walkeeper safekeepers.', SafekeeperSpec, SafekeeperStatus, [
    { name: 'Replicas', type: 'integer', jsonPath: '.spec.replicas' },
    { name: 'Ready', type: 'integer', jsonPath: '.status.readyReplicas' },
    { name: 'Quorum', type: 'string', jsonPath: '.status.quorum.status', description: 'Healthy, Degraded (majority up) or Lost' },
    { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
  ]);
}

export function tenantCrd(): CustomResourceDefinition {
  return crd('Tenant', 'tenants', ['wkt'], 'A walkeeper tenant: its timeline on a Safekeeper cluster and its PostgreSQL compute.', TenantSpec, TenantStatus, [
    { name: 'Tenant ID', type: 'string', jsonPath: '.status.tenantId' },
    { name: 'Safekeeper', type: 'string', jsonPath: '.spec.safekeeperRef.name' },
    { name: 'Quorum', type: 'string', jsonPath: '.status.conditions[?(@.type=="QuorumHealthy")].status' },
    { name: 'Commit LSN', type: 'string', jsonPath: '.status.commitLsn' },
    { name: 'Ready', type: 'string', jsonPath: '.status.conditions[?(@.type=="Ready")].status' },
    { name: 'Last Backup', type: 'date', jsonPath: '.status.backup.lastSuccessful.completedAt', priority: 1 },
    { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
  ]);
}

export const CRD_FILES: Record<string, () => CustomResourceDefinition> = {
  'safekeepers.walkeeper.io.yaml': safekeeperCrd,
  'tenants.walkeeper.io.yaml': tenantCrd,
};
