// API semantics independent of HTTP: create/update/patch/delete with resourceVersion
// preconditions, generation, status subresource, finalizers, CRD validation and managedFields.
import { builtinTypes, gvString, storageKey, typeFromCrd, type ResourceType } from './resources.js';
import { Store } from './store.js';
import { applyDefaults, prune, validateCel, validateSchema, type Schema } from './schema.js';
import { jsonPatch, mergePatch, serverSideApply, strategicMergePatch, trackUpdate } from './patch.js';
import { parseFieldSelector, parseLabelSelector } from './selectors.js';
import { clone, deepEqual, errors, isObj, nowIso, randomSuffix, type KObject, type StatusCause } from './util.js';
import { randomUUID } from 'node:crypto';

export interface WriteOptions {
  fieldManager?: string;
  fieldValidation?: string;
  dryRun?: boolean;
  subresource?: string;
  /** apiVersion (group/version) the client used */
  gv?: string;
  /** internal writers (controllers) may bypass namespace-terminating checks */
  internal?: boolean;
  warnings?: string[];
  /** managedFields already computed (server-side apply) */
  skipTracking?: boolean;
}
export interface DeleteOptions {
  propagationPolicy?: 'Background' | 'Foreground' | 'Orphan';
  gracePeriodSeconds?: number;
  preconditions?: { uid?: string; resourceVersion?: string };
  dryRun?: boolean;
}
export type PatchType = 'merge' | 'json' | 'strategic' | 'apply';

/** A per-type hook run on every write before storage (defaulting, allocation). */
export type Defaulter = (obj: KObject, old: KObject | undefined, api: Api) => void;
/** Decides whether a pod-like object needs graceful deletion (returns grace seconds or 0). */
export type GracefulDeleter = (obj: KObject, requested: number | undefined) => number;

const NAME_RE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

export class Api {
  readonly store: Store;
  private types = new Map<string, ResourceType>();
  readonly defaulters = new Map<string, Defaulter[]>();
  gracefulDelete?: GracefulDeleter;
  /** called when a type set changes (CRD registered/removed) */
  onTypesChanged: (() => void)[] = [];

  constructor(store = new Store()) {
    this.store = store;
    for (const t of builtinTypes()) this.addType(t);
  }

  // ------------------------------------------------------------------ types
  addType(t: ResourceType): void {
    for (const v of t.versions) this.types.set(`${t.group}/${v}/${t.resource}`, t);
    for (const f of this.onTypesChanged) f();
  }
  removeType(group: string, resource: string): void {
    for (const [k, t] of this.types) if (t.group === group && t.resource === resource && t.custom) this.types.delete(k);
    for (const f of this.onTypesChanged) f();
  }
  type(group: string, version: string, resource: string): ResourceType | undefined {
    return this.types.get(`${group}/${version}/${resource}`);
  }
  allTypes(): { t: ResourceType; version: string }[] {
    return [...this.types.entries()].map(([k, t]) => ({ t, version: k.split('/')[1]! }));
  }
  typeForKind(apiVersion: string, kind: string): ResourceType | undefined {
    const [group, version] = apiVersion.includes('/') ? apiVersion.split('/') : ['', apiVersion];
    for (const [k, t] of this.types) if (t.group === group && t.kind === kind && k.split('/')[1] === version) return t;
    for (const t of this.types.values()) if (t.group === group && t.kind === kind) return t;
    return undefined;
  }
  registerCrd(crd: KObject): ResourceType {
    const t = typeFromCrd(crd);
    this.removeType(t.group, t.resource);
    this.addType(t);
    return t;
  }
  addDefaulter(t: { group: string; resource: string }, d: Defaulter): void {
    const k = storageKey(t);
    this.defaulters.set(k, [...(this.defaulters.get(k) ?? []), d]);
  }

  // ------------------------------------------------------------------ conversion
  /** The object as seen in version `version` of `t`. */
  out(t: ResourceType, obj: KObject, version = t.version): KObject {
    const o = clone(obj);
    if (t.group === 'events.k8s.io') return coreEventToEventsV1(o);
    if (t.custom) {
      o.apiVersion = gvString(t.group, version);
      applyDefaults(o, (t.schemas?.[version] as Schema | undefined));
    }
    return o;
  }
  private in(t: ResourceType, obj: KObject): KObject {
    if (t.group === 'events.k8s.io') return eventsV1ToCoreEvent(obj);
    obj.apiVersion = gvString(t.group, t.version);
    obj.kind = t.kind;
    return obj;
  }

  // ------------------------------------------------------------------ reads
  get(t: ResourceType, ns: string | undefined, name: string): KObject {
    const o = this.store.get(storageKey(t), t.namespaced ? ns : undefined, name);
    if (!o) throw errors.notFound(t.resource, t.group, name);
    return o;
  }
  tryGet(t: ResourceType, ns: string | undefined, name: string): KObject | undefined {
    return this.store.get(storageKey(t), t.namespaced ? ns : undefined, name);
  }
  list(t: ResourceType, ns: string | undefined, labelSelector?: string, fieldSelector?: string): KObject[] {
    const ls = parseLabelSelector(labelSelector);
    const fs = parseFieldSelector(fieldSelector);
    return this.store.list(storageKey(t), t.namespaced ? ns : undefined).filter((o) => ls(o) && fs(o));
  }

  // ------------------------------------------------------------------ writes
  create(t: ResourceType, ns: string | undefined, body: KObject, opts: WriteOptions = {}): KObject {
    if (!isObj(body) || !isObj(body.metadata)) body = { ...(isObj(body) ? body : {}), metadata: {} } as KObject;
    let obj = this.in(t, clone(body));
    const m = obj.metadata;
    if (t.namespaced) {
      if (m.namespace && ns && m.namespace !== ns) throw errors.badRequest('the namespace of the provided object does not match the namespace sent on the request');
      m.namespace = ns ?? m.namespace;
      if (!m.namespace) throw errors.badRequest('an empty namespace may not be set during creation');
    } else delete m.namespace;
    if (!m.name && m.generateName) m.name = `${m.generateName}${randomSuffix()}`;
    if (!m.name) throw errors.invalid(t.kind, t.group, '', [{ reason: 'FieldValueRequired', message: 'Required value: name or generateName is required', field: 'metadata.name' }]);
    if (!NAME_RE.test(m.name) || m.name.length > 253) {
      throw errors.invalid(t.kind, t.group, m.name, [{ reason: 'FieldValueInvalid', field: 'metadata.name', message: `Invalid value: "${m.name}": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')` }]);
    }
    if (t.namespaced && !opts.internal) {
      const nsObj = this.store.get('/namespaces', undefined, m.namespace!);
      if (!nsObj) throw errors.notFound('namespaces', '', m.namespace!);
      if (nsObj.metadata.deletionTimestamp) {
        throw errors.forbidden(`${t.resource}${t.group ? '.' + t.group : ''} "${m.name}" is forbidden: unable to create new content in namespace ${m.namespace} because it is being terminated`, t.resource, t.group, m.name);
      }
    }
    if (this.store.get(storageKey(t), m.namespace, m.name)) throw errors.alreadyExists(t.resource, t.group, m.name);
    m.uid = randomUUID();
    m.creationTimestamp = nowIso();
    delete m.deletionTimestamp;
    delete m.deletionGracePeriodSeconds;
    delete m.resourceVersion;
    if (t.generation) m.generation = 1;
    else delete m.generation;
    if (t.status && t.custom) delete obj.status;
    obj = this.prepare(t, obj, undefined, opts);
    if (opts.fieldManager !== undefined && !opts.skipTracking) trackUpdate(undefined, obj, opts.fieldManager, opts.gv ?? gvString(t.group, t.version));
    if (opts.dryRun) return obj;
    return this.store.put(storageKey(t), obj, 'ADDED');
  }

  /** PUT. `body` is the full new object; status subresource semantics by opts.subresource. */
  update(t: ResourceType, ns: string | undefined, name: string, body: KObject, opts: WriteOptions = {}, requireRv = t.custom): KObject {
    const old = this.get(t, ns, name);
    if (!isObj(body) || !isObj(body.metadata)) throw errors.badRequest('Object \'metadata\' is missing');
    const rv = body.metadata.resourceVersion;
    if (body.metadata.name && body.metadata.name !== name) throw errors.badRequest('the name of the object does not match the name on the URL');
    if (rv === undefined || rv === '') {
      if (requireRv && opts.subresource !== 'patch') {
        throw errors.invalid(t.kind, t.group, name, [{ reason: 'FieldValueInvalid', field: 'metadata.resourceVersion', message: 'Invalid value: 0x0: must be specified for an update' }]);
      }
    } else if (rv !== old.metadata.resourceVersion) throw errors.conflict(t.resource, t.group, name);
    let obj = this.in(t, clone(body));
    const om = old.metadata;
    const m = obj.metadata;
    m.name = name;
    if (t.namespaced) m.namespace = om.namespace; else delete m.namespace;
    m.uid = om.uid;
    m.creationTimestamp = om.creationTimestamp;
    if (om.deletionTimestamp) { m.deletionTimestamp = om.deletionTimestamp; m.deletionGracePeriodSeconds = om.deletionGracePeriodSeconds; }
    else { delete m.deletionTimestamp; delete m.deletionGracePeriodSeconds; }
    if (om.generation !== undefined) m.generation = om.generation; else delete m.generation;
    if (m.managedFields === undefined && om.managedFields) m.managedFields = clone(om.managedFields);
    const sub = opts.subresource === 'status' ? 'status' : undefined;
    if (t.status) {
      if (sub === 'status') {
        const st = obj.status;
        const mf = m.managedFields;
        obj = clone(old);
        obj.metadata.managedFields = mf;
        if (st === undefined) delete obj.status; else obj.status = st;
      } else if (old.status === undefined) delete obj.status;
      else obj.status = clone(old.status);
    }
    if (om.deletionTimestamp) {
      const added = (obj.metadata.finalizers ?? []).filter((f) => !(om.finalizers ?? []).includes(f));
      if (added.length) throw errors.invalid(t.kind, t.group, name, [{ reason: 'FieldValueForbidden', field: 'metadata.finalizers', message: `Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers []string{${added.map((f) => JSON.stringify(f)).join(', ')}}` }]);
    }
    obj = this.prepare(t, obj, old, opts);
    // no-op writes are not persisted (no new resourceVersion, no watch event)
    const strip = (o: KObject) => {
      const c = clone(o);
      if (opts.skipTracking) c.metadata.managedFields?.forEach((e) => { delete (e as { time?: string }).time; });
      else delete c.metadata.managedFields;
      delete c.metadata.resourceVersion;
      return c;
    };
    if (deepEqual(strip(obj), strip(old))) return old;
    if (t.generation && !sub) {
      const specOf = (o: KObject) => { const c = clone(o) as Record<string, unknown>; delete c.metadata; if (t.status) delete c.status; return c; };
      if (!deepEqual(specOf(obj), specOf(old))) obj.metadata.generation = (om.generation ?? 0) + 1;
    }
    if (!opts.skipTracking) trackUpdate(old, obj, opts.fieldManager ?? 'unknown', opts.gv ?? gvString(t.group, t.version), sub);
    if (opts.dryRun) return obj;
    if (obj.metadata.deletionTimestamp && !(obj.metadata.finalizers?.length) && !this.hasSpecFinalizers(obj)) {
      return this.store.remove(storageKey(t), obj);
    }
    return this.store.put(storageKey(t), obj, 'MODIFIED', old);
  }

  patch(t: ResourceType, ns: string | undefined, name: string, type: PatchType, body: unknown, opts: WriteOptions & { force?: boolean } = {}): { obj: KObject; created: boolean } {
    const live = this.tryGet(t, ns, name);
    const version = opts.gv?.split('/').pop() ?? t.version;
    if (type === 'apply') {
      if (!isObj(body)) throw errors.badRequest('error decoding YAML: invalid apply configuration');
      const cfg = body as KObject;
      if (!isObj(cfg.metadata)) cfg.metadata = {};
      if (cfg.metadata.name && cfg.metadata.name !== name) throw errors.badRequest('the name of the object does not match the name on the URL');
      cfg.metadata.name = name;
      if (!opts.fieldManager) throw errors.badRequest('PATCH, application/apply-patch+yaml requires fieldManager to be set');
      const gv = opts.gv ?? gvString(t.group, t.version);
      if (!live) {
        if (opts.subresource === 'status') throw errors.notFound(t.resource, t.group, name);
        const merged = serverSideApply(undefined, cfg, opts.fieldManager, gv, true);
        return { obj: this.create(t, ns, merged, { ...opts, skipTracking: true }), created: true };
      }
      const liveOut = this.out(t, live, version);
      const merged = serverSideApply(liveOut, cfg, opts.fieldManager, gv, opts.force === true, opts.subresource);
      merged.metadata.resourceVersion = live.metadata.resourceVersion;
      return { obj: this.update(t, ns, name, merged, { ...opts, skipTracking: true }, false), created: false };
    }
    if (!live) throw errors.notFound(t.resource, t.group, name);
    const cur = this.out(t, live, version);
    let patched: unknown;
    if (type === 'merge') patched = mergePatch(cur, body);
    else if (type === 'json') patched = jsonPatch(cur, body);
    else patched = strategicMergePatch(cur, body);
    if (!isObj(patched)) throw errors.badRequest('patch did not produce an object');
    const p = patched as KObject;
    if (!isObj(p.metadata)) p.metadata = {};
    if (p.metadata.resourceVersion === undefined || p.metadata.resourceVersion === null) p.metadata.resourceVersion = live.metadata.resourceVersion;
    return { obj: this.update(t, ns, name, p, opts, false), created: false };
  }

  private hasSpecFinalizers(obj: KObject): boolean {
    return obj.kind === 'Namespace' && ((obj.spec as { finalizers?: string[] } | undefined)?.finalizers?.length ?? 0) > 0;
  }

  delete(t: ResourceType, ns: string | undefined, name: string, opts: DeleteOptions = {}): KObject {
    const old = this.get(t, ns, name);
    const pre = opts.preconditions;
    if (pre?.uid && pre.uid !== old.metadata.uid) throw errors.conflict(t.resource, t.group, name, `Precondition failed: UID in precondition: ${pre.uid}, UID in object meta: ${old.metadata.uid}`);
    if (pre?.resourceVersion && pre.resourceVersion !== old.metadata.resourceVersion) throw errors.conflict(t.resource, t.group, name, `Precondition failed: ResourceVersion in precondition: ${pre.resourceVersion}, ResourceVersion in meta: ${old.metadata.resourceVersion}`);
    const obj = clone(old);
    const fin = new Set(obj.metadata.finalizers ?? []);
    if (opts.propagationPolicy === 'Foreground') { fin.add('foregroundDeletion'); fin.delete('orphan'); }
    if (opts.propagationPolicy === 'Orphan') { fin.add('orphan'); fin.delete('foregroundDeletion'); }
    if (t.group === '' && t.resource === 'namespaces') {
      if (!obj.spec || !isObj(obj.spec)) obj.spec = {};
      (obj.spec as { finalizers?: string[] }).finalizers = ['kubernetes'];
      obj.status = { ...(isObj(obj.status) ? obj.status : {}), phase: 'Terminating' };
    }
    const grace = this.gracefulDelete && !obj.metadata.deletionTimestamp ? this.gracefulDelete(obj, opts.gracePeriodSeconds) : 0;
    const needsWait = fin.size > 0 || this.hasSpecFinalizers(obj) || grace > 0;
    if (opts.dryRun) return obj;
    if (!needsWait) return this.store.remove(storageKey(t), obj);
    if (obj.metadata.deletionTimestamp && deepEqual([...fin], obj.metadata.finalizers ?? [])) return old;
    if (fin.size > 0) obj.metadata.finalizers = [...fin];
    if (!obj.metadata.deletionTimestamp) {
      obj.metadata.deletionTimestamp = new Date(Date.now() + grace * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
      obj.metadata.deletionGracePeriodSeconds = grace;
      if (obj.metadata.generation !== undefined) obj.metadata.generation += 1;
    }
    return this.store.put(storageKey(t), obj, 'MODIFIED', old);
  }

  /** Removes an object regardless of finalizers (used by controllers after graceful termination). */
  forceRemove(t: ResourceType, obj: KObject): void {
    if (this.store.get(storageKey(t), obj.metadata.namespace, obj.metadata.name!)) this.store.remove(storageKey(t), obj);
  }

  /** Direct write used by controllers for fields clients may not change (no validation, no managedFields). */
  internalWrite(t: ResourceType, obj: KObject, old: KObject): KObject {
    if (deepEqual(obj, old)) return old;
    return this.store.put(storageKey(t), obj, 'MODIFIED', old);
  }

  // ------------------------------------------------------------------ validation
  private prepare(t: ResourceType, obj: KObject, old: KObject | undefined, opts: WriteOptions): KObject {
    if (t.custom) {
      const schema = t.schemas?.[t.version] as Schema | undefined;
      if (!t.preserveUnknown) {
        const dropped = prune(obj as Record<string, unknown>, schema);
        const unknown = dropped.filter((d) => !d.startsWith('metadata.'));
        if (unknown.length && opts.fieldValidation === 'Strict') throw errors.badRequest(`strict decoding error: ${unknown.map((u) => `unknown field "${u}"`).join(', ')}`);
        if (unknown.length && (opts.fieldValidation ?? 'Warn') === 'Warn') opts.warnings?.push(...unknown.map((u) => `unknown field "${u}"`));
      }
      applyDefaults(obj, schema);
      const causes: StatusCause[] = [...validateSchema(obj, schema)];
      if (causes.length === 0) causes.push(...validateCel(obj, old ? this.out(t, old) : undefined, schema));
      if (causes.length) throw errors.invalid(t.kind, t.group, obj.metadata.name ?? '', causes);
    }
    for (const d of this.defaulters.get(storageKey(t)) ?? []) d(obj, old, this);
    return obj;
  }
}

// ---------------------------------------------------------------- events.k8s.io/v1 <-> v1
const EVENT_MAP: [string, string][] = [
  ['regarding', 'involvedObject'], ['note', 'message'], ['deprecatedSource', 'source'], ['deprecatedFirstTimestamp', 'firstTimestamp'],
  ['deprecatedLastTimestamp', 'lastTimestamp'], ['deprecatedCount', 'count'], ['reportingController', 'reportingComponent'],
];
function eventsV1ToCoreEvent(o: KObject): KObject {
  const r = o as Record<string, unknown>;
  for (const [a, b] of EVENT_MAP) if (a in r) { r[b] = r[a]; delete r[a]; }
  r.apiVersion = 'v1';
  r.kind = 'Event';
  return o;
}
function coreEventToEventsV1(o: KObject): KObject {
  const r = o as Record<string, unknown>;
  for (const [a, b] of EVENT_MAP) if (b in r) { r[a] = r[b]; delete r[b]; }
  r.apiVersion = 'events.k8s.io/v1';
  r.kind = 'Event';
  return o;
}

export { mergePatch };
