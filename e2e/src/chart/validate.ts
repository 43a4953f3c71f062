// Offline validation of rendered manifests: built-in kinds with kubernetes-models (the Kubernetes
// OpenAPI schemas), walkeeper.io custom resources with ajv against the CRDs' openAPIV3Schema.
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { CustomResourceDefinition } from 'kubernetes-models/apiextensions.k8s.io/v1/CustomResourceDefinition';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { Secret } from 'kubernetes-models/v1/Secret';
import { Service } from 'kubernetes-models/v1/Service';
import { ServiceAccount } from 'kubernetes-models/v1/ServiceAccount';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget';
import { ClusterRole } from 'kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRole';
import { ClusterRoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRoleBinding';
import { Role } from 'kubernetes-models/rbac.authorization.k8s.io/v1/Role';
import { RoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1/RoleBinding';
import type { KubeObject } from './helm.js';

interface Validatable {
  validate(): void;
}
type ModelCtor = new (obj: never) => Validatable;

const models: Record<string, ModelCtor> = {
  'apiextensions.k8s.io/v1/CustomResourceDefinition': CustomResourceDefinition as unknown as ModelCtor,
  'apps/v1/Deployment': Deployment as unknown as ModelCtor,
  'v1/ConfigMap': ConfigMap as unknown as ModelCtor,
  'v1/Secret': Secret as unknown as ModelCtor,
  'v1/Service': Service as unknown as ModelCtor,
  'v1/ServiceAccount': ServiceAccount as unknown as ModelCtor,
  'policy/v1/PodDisruptionBudget': PodDisruptionBudget as unknown as ModelCtor,
  'rbac.authorization.k8s.io/v1/ClusterRole': ClusterRole as unknown as ModelCtor,
  'rbac.authorization.k8s.io/v1/ClusterRoleBinding': ClusterRoleBinding as unknown as ModelCtor,
  'rbac.authorization.k8s.io/v1/Role': Role as unknown as ModelCtor,
  'rbac.authorization.k8s.io/v1/RoleBinding': RoleBinding as unknown as ModelCtor,
};

/** True when kubernetes-models has a schema for the object's apiVersion/kind. */
export function isBuiltin(obj: KubeObject): boolean {
  return `${obj.apiVersion}/${obj.kind}` in models;
}

/** Validates a built-in object against the Kubernetes schema; throws naming the object on failure. */
export function validateBuiltin(obj: KubeObject): void {
  const Model = models[`${obj.apiVersion}/${obj.kind}`];
  if (!Model) throw new Error(`no kubernetes-models schema registered for ${obj.apiVersion}/${obj.kind}`);
  try {
    new Model(structuredClone(obj) as never).validate();
  } catch (e) {
    throw new Error(`${obj.kind}/${obj.metadata?.name}: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  }
}

type Schema = Record<string, unknown>;

/**
 * A structural schema made strict: every object schema that lists `properties` (and neither
 * preserves unknown fields nor has additionalProperties) refuses other fields. The API server would
 * silently prune them; a test should report them, since a pruned field in an example is a typo.
 */
export function strictSchema(schema: Schema): Schema {
  const s: Schema = { ...schema };
  for (const key of ['properties', 'patternProperties']) {
    const props = s[key] as Record<string, Schema> | undefined;
    if (props) s[key] = Object.fromEntries(Object.entries(props).map(([k, v]) => [k, strictSchema(v)]));
  }
  for (const key of ['items', 'additionalProperties']) {
    const v = s[key];
    if (v && typeof v === 'object' && !Array.isArray(v)) s[key] = strictSchema(v as Schema);
  }
  for (const key of ['anyOf', 'allOf', 'oneOf']) {
    const v = s[key];
    if (Array.isArray(v)) s[key] = v.map((x) => strictSchema(x as Schema));
  }
  if (s.properties && s.additionalProperties === undefined && s['x-kubernetes-preserve-unknown-fields'] !== true) {
    s.additionalProperties = false;
  }
  return s;
}

function makeAjv(): Ajv {
  // Defaults applied like the API server does before validation; x-kubernetes-* are annotations
  // here (CEL rules in x-kubernetes-validations are not evaluated by this check).
  const ajv = new Ajv({ useDefaults: true, allErrors: true, strict: false });
  for (const keyword of ['x-kubernetes-validations', 'x-kubernetes-preserve-unknown-fields', 'x-kubernetes-int-or-string', 'x-kubernetes-list-type', 'x-kubernetes-list-map-keys', 'x-kubernetes-map-type', 'x-kubernetes-embedded-resource']) {
    ajv.addKeyword({ keyword });
  }
  ajv.addFormat('date-time', true);
  return ajv;
}

export interface CrValidator {
  /** Errors of one custom resource (empty when valid); the object gets the schema's defaults. */
  errors(obj: KubeObject): string[];
  kinds(): string[];
}

/** Compiles one validator per served version of each CRD. */
export function crValidator(crds: KubeObject[]): CrValidator {
  const ajv = makeAjv();
  const fns = new Map<string, ValidateFunction>();
  for (const crd of crds) {
    const spec = crd.spec as { group: string; names: { kind: string }; versions: Array<{ name: string; served: boolean; schema: { openAPIV3Schema: Schema } }> };
    for (const v of spec.versions) {
      if (!v.served) continue;
      fns.set(`${spec.group}/${v.name}/${spec.names.kind}`, ajv.compile(strictSchema(v.schema.openAPIV3Schema)));
    }
  }
  const fmt = (e: ErrorObject) => `${e.instancePath || '/'} ${e.message}${e.keyword === 'additionalProperties' ? ` (${(e.params as { additionalProperty: string }).additionalProperty})` : ''}`;
  return {
    kinds: () => [...fns.keys()],
    errors(obj) {
      const fn = fns.get(`${obj.apiVersion}/${obj.kind}`);
      if (!fn) return [`no CRD serves ${obj.apiVersion} ${obj.kind}`];
      const errs: string[] = [];
      if (!obj.metadata?.name) errs.push('/metadata/name is required');
      if (!fn(obj)) errs.push(...(fn.errors ?? []).map(fmt));
      return errs;
    },
  };
}
