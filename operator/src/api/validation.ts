// ajv validation of Safekeeper/Tenant objects against the CRD openAPIV3Schema, with defaults applied,
// producing messages that name the field (e.g. "spec.replicas: must be one of 1, 3, 5, 7").
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { safekeeperCrd, tenantCrd } from './crds.js';

export interface ValidationResult<T> {
  valid: boolean;
  errors: string[];
  /** The object with schema defaults applied (a copy). */
  value: T;
}

function makeAjv(): Ajv {
  const ajv = new Ajv({ useDefaults: true, allErrors: true, strict: false });
  ajv.addKeyword({ keyword: 'x-kubernetes-validations' });
  ajv.addKeyword({ keyword: 'x-kubernetes-preserve-unknown-fields' });
  ajv.addKeyword({ keyword: 'x-kubernetes-int-or-string' });
  ajv.addFormat('date-time', true);
  return ajv;
}

let compiled: { Safekeeper: ValidateFunction; Tenant: ValidateFunction } | undefined;
function validators(): { Safekeeper: ValidateFunction; Tenant: ValidateFunction } {
  if (!compiled) {
    const ajv = makeAjv();
    compiled = {
      Safekeeper: ajv.compile(safekeeperCrd().spec.versions[0].schema.openAPIV3Schema),
      Tenant: ajv.compile(tenantCrd().spec.versions[0].schema.openAPIV3Schema),
    };
  }
  return compiled;
}

function fieldPath(instancePath: string): string {
  return instancePath.replace(/^\//, '').replace(/\/(\d+)(?=\/|$)/g, '[$1]').replace(/\//g, '.');
}

export function formatError(e: ErrorObject): string {
  let field = fieldPath(e.instancePath);
  if (e.keyword === 'required') field = field ? `${field}.${String(e.params.missingProperty)}` : String(e.params.missingProperty);
  const message =
    e.keyword === 'enum'
      ? `must be one of ${(e.params.allowedValues as unknown[]).map(String).join(', ')}`
      : e.keyword === 'required'
        ? 'required value'
        : (e.message ?? e.keyword);
  return `${field || '<root>'}: ${message}`;
}

export function validateResource<T>(kind: 'Safekeeper' | 'Tenant', obj: unknown): ValidationResult<T> {
  const value = structuredClone(obj) as T;
  const validate = validators()[kind];
  const valid = validate(value) as boolean;
  const errors = valid ? [] : [...new Set((validate.errors ?? []).map(formatError))];
  return { valid, errors, value };
}
