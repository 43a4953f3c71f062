// Decoder for the Kubernetes protobuf envelope ("k8s\0" + runtime.Unknown) of the kinds that
// kubectl's typed clients send (e.g. `kubectl create namespace|configmap|secret|...`).
// Responses are always JSON, which those clients also accept.

type Kind = 'string' | 'int' | 'bool' | 'bytes' | 'time' | 'map' | 'bytesmap' | 'intorstring' | Msg;
type F = [name: string, kind: Kind, repeated?: boolean];
interface Msg { [field: number]: F }

const TIME: Msg = { 1: ['seconds', 'int'], 2: ['nanos', 'int'] };
const OWNER_REF: Msg = { 1: ['kind', 'string'], 3: ['name', 'string'], 4: ['uid', 'string'], 5: ['apiVersion', 'string'], 6: ['controller', 'bool'], 7: ['blockOwnerDeletion', 'bool'] };
const OBJECT_META: Msg = {
  1: ['name', 'string'], 2: ['generateName', 'string'], 3: ['namespace', 'string'], 5: ['uid', 'string'], 6: ['resourceVersion', 'string'],
  7: ['generation', 'int'], 8: ['creationTimestamp', 'time'], 9: ['deletionTimestamp', 'time'], 10: ['deletionGracePeriodSeconds', 'int'],
  11: ['labels', 'map'], 12: ['annotations', 'map'], 13: ['ownerReferences', OWNER_REF, true], 14: ['finalizers', 'string', true],
};
const LABEL_SELECTOR: Msg = { 1: ['matchLabels', 'map'], 2: ['matchExpressions', { 1: ['key', 'string'], 2: ['operator', 'string'], 3: ['values', 'string', true] }, true] };
const POLICY_RULE: Msg = { 1: ['verbs', 'string', true], 2: ['apiGroups', 'string', true], 3: ['resources', 'string', true], 4: ['resourceNames', 'string', true], 5: ['nonResourceURLs', 'string', true] };
const SUBJECT: Msg = { 1: ['kind', 'string'], 2: ['apiGroup', 'string'], 3: ['name', 'string'], 4: ['namespace', 'string'] };
const ROLE_REF: Msg = { 1: ['apiGroup', 'string'], 2: ['kind', 'string'], 3: ['name', 'string'] };
const SERVICE_PORT: Msg = { 1: ['name', 'string'], 2: ['protocol', 'string'], 3: ['port', 'int'], 4: ['targetPort', 'intorstring'], 5: ['nodePort', 'int'], 6: ['appProtocol', 'string'] };

const KINDS: Record<string, Msg> = {
  'v1/Namespace': { 1: ['metadata', OBJECT_META], 2: ['spec', { 1: ['finalizers', 'string', true] }], 3: ['status', { 1: ['phase', 'string'] }] },
  'v1/ConfigMap': { 1: ['metadata', OBJECT_META], 2: ['data', 'map'], 3: ['binaryData', 'bytesmap'], 4: ['immutable', 'bool'] },
  'v1/Secret': { 1: ['metadata', OBJECT_META], 2: ['data', 'bytesmap'], 3: ['type', 'string'], 4: ['stringData', 'map'], 5: ['immutable', 'bool'] },
  'v1/ServiceAccount': { 1: ['metadata', OBJECT_META], 3: ['imagePullSecrets', { 1: ['name', 'string'] }, true], 4: ['automountServiceAccountToken', 'bool'] },
  'v1/Service': {
    1: ['metadata', OBJECT_META],
    2: ['spec', {
      1: ['ports', SERVICE_PORT, true], 2: ['selector', 'map'], 3: ['clusterIP', 'string'], 4: ['type', 'string'], 5: ['externalIPs', 'string', true],
      7: ['sessionAffinity', 'string'], 10: ['externalName', 'string'], 11: ['externalTrafficPolicy', 'string'], 13: ['publishNotReadyAddresses', 'bool'], 18: ['clusterIPs', 'string', true],
    }],
  },
  'rbac.authorization.k8s.io/v1/Role': { 1: ['metadata', OBJECT_META], 2: ['rules', POLICY_RULE, true] },
  'rbac.authorization.k8s.io/v1/ClusterRole': { 1: ['metadata', OBJECT_META], 2: ['rules', POLICY_RULE, true] },
  'rbac.authorization.k8s.io/v1/RoleBinding': { 1: ['metadata', OBJECT_META], 2: ['subjects', SUBJECT, true], 3: ['roleRef', ROLE_REF] },
  'rbac.authorization.k8s.io/v1/ClusterRoleBinding': { 1: ['metadata', OBJECT_META], 2: ['subjects', SUBJECT, true], 3: ['roleRef', ROLE_REF] },
  'policy/v1/PodDisruptionBudget': { 1: ['metadata', OBJECT_META], 2: ['spec', { 1: ['minAvailable', 'intorstring'], 2: ['selector', LABEL_SELECTOR], 3: ['maxUnavailable', 'intorstring'], 4: ['unhealthyPodEvictionPolicy', 'string'] }] },
  'coordination.k8s.io/v1/Lease': { 1: ['metadata', OBJECT_META], 2: ['spec', { 1: ['holderIdentity', 'string'], 2: ['leaseDurationSeconds', 'int'], 5: ['leaseTransitions', 'int'] }] },
};

class Reader {
  pos = 0;
  constructor(readonly buf: Buffer, readonly end = buf.length) {}
  varint(): bigint {
    let r = 0n;
    let shift = 0n;
    for (;;) {
      const b = this.buf[this.pos++]!;
      r |= BigInt(b & 0x7f) << shift;
      if (!(b & 0x80)) return r;
      shift += 7n;
    }
  }
  bytes(): Buffer {
    const n = Number(this.varint());
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }
  skip(wire: number): void {
    if (wire === 0) this.varint();
    else if (wire === 1) this.pos += 8;
    else if (wire === 2) this.bytes();
    else if (wire === 5) this.pos += 4;
    else throw new Error(`unsupported wire type ${wire}`);
  }
}

function toInt(v: bigint): number {
  return Number(BigInt.asIntN(64, v));
}

function decodeMsg(buf: Buffer, schema: Msg): Record<string, unknown> {
  const r = new Reader(buf);
  const out: Record<string, unknown> = {};
  while (r.pos < r.end) {
    const tag = Number(r.varint());
    const field = tag >> 3;
    const wire = tag & 7;
    const f = schema[field];
    if (!f) { r.skip(wire); continue; }
    const [name, kind, repeated] = f;
    let value: unknown;
    if (kind === 'int') value = toInt(r.varint());
    else if (kind === 'bool') value = r.varint() !== 0n;
    else {
      const b = r.bytes();
      if (kind === 'string') value = b.toString('utf8');
      else if (kind === 'bytes') value = b.toString('base64');
      else if (kind === 'time') {
        const t = decodeMsg(b, TIME);
        value = new Date(((t.seconds as number) ?? 0) * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
      } else if (kind === 'map' || kind === 'bytesmap') {
        const e = decodeMsg(b, { 1: ['key', 'string'], 2: ['value', kind === 'map' ? 'string' : 'bytes'] });
        const m = (out[name] ?? {}) as Record<string, unknown>;
        m[(e.key as string) ?? ''] = e.value ?? '';
        out[name] = m;
        continue;
      } else if (kind === 'intorstring') {
        const e = decodeMsg(b, { 1: ['type', 'int'], 2: ['intVal', 'int'], 3: ['strVal', 'string'] });
        value = e.type === 1 ? (e.strVal ?? '') : (e.intVal ?? 0);
      } else value = decodeMsg(b, kind);
    }
    if (!repeated && (value === '' || value === 0 || value === false)) continue; // Go's omitempty
    if (repeated) out[name] = [...((out[name] as unknown[]) ?? []), value];
    else out[name] = value;
  }
  return out;
}

export const PROTOBUF_MEDIA_TYPE = 'application/vnd.kubernetes.protobuf';

/** Decodes an envelope; returns undefined when the kind is not one the harness knows. */
export function decodeK8sProtobuf(buf: Buffer): Record<string, unknown> | undefined {
  if (buf.length < 4 || buf.subarray(0, 4).toString('latin1') !== 'k8s\u0000') return undefined;
  const unknown = decodeMsg(buf.subarray(4), { 1: ['typeMeta', { 1: ['apiVersion', 'string'], 2: ['kind', 'string'] }], 2: ['raw', 'bytes'] });
  const tm = (unknown.typeMeta ?? {}) as { apiVersion?: string; kind?: string };
  const schema = KINDS[`${tm.apiVersion}/${tm.kind}`];
  if (!schema) return undefined;
  const obj = decodeMsg(Buffer.from((unknown.raw as string) ?? '', 'base64'), schema);
  return { apiVersion: tm.apiVersion, kind: tm.kind, ...obj, metadata: obj.metadata ?? {} };
}
