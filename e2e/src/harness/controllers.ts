// Controllers running inside the harness: CRD establishment, namespaces, garbage collection,
// StatefulSets, the pod lifecycle (placement, IPs, runtime) and Service addresses/proxying.
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import type { Api } from './api.js';
import type { ResourceType } from './resources.js';
import { storageKey } from './resources.js';
import type { StoreEvent } from './store.js';
import { LoopbackAllocator, type ContainerStatusReport, type PodRuntime, type PodStatusReport } from './runtime.js';
import { labelSelectorToString, parseLabelSelector } from './selectors.js';
import { toCauses, validateCrd } from './crdValidation.js';
import { ApiError, clone, deepEqual, errors, isObj, nowIso, shortHash, stableStringify, type KObject, type StatusCause } from './util.js';

const MANAGER = 'harness-controller-manager';
const CRD_FINALIZER = 'customresourcecleanup.apiextensions.k8s.io';
export const HOST_PATH_ANNOTATION = 'harness.walkeeper.io/host-path';

type Logger = (msg: string) => void;

function ignoreGone(e: unknown): void {
  if (e instanceof ApiError && (e.code === 404 || e.code === 409)) return;
  throw e;
}

export class Controllers {
  private timers: NodeJS.Timeout[] = [];
  private pending = false;
  private running = false;
  private unsub: () => void;
  readonly podIPs = new LoopbackAllocator('127.10');
  readonly serviceIPs = new LoopbackAllocator('127.20');
  private podState = new Map<string, 'starting' | 'running' | 'stopping'>();
  private revisions = new Map<string, Map<string, unknown>>();
  private proxies = new Map<string, net.Server[]>();
  /**
   * Addresses StatefulSet pods had, by `<ns>/<hostname>.<subdomain>`: a recreated pod gets its old
   * address back when it is free. Stand-in for cluster DNS, which the runtime resolves once at
   * container start (dns.ts): a peer's rewritten `<pod>.<svc>...` address stays valid across
   * the pod's restarts, as the DNS name would.
   */
  private stickyIPs = new Map<string, string>();
  /** Directories of deleted claims still used by a running pod (see reclaimVolume). */
  private volumesToReclaim = new Set<string>();
  private closed = false;

  constructor(
    private readonly api: Api,
    private readonly runtime: PodRuntime,
    private readonly stateDir: string,
    private readonly log: Logger = () => {},
    private readonly serviceProxy = true,
  ) {
    this.installDefaulters();
    api.gracefulDelete = (obj, requested) => {
      if (obj.kind !== 'Pod') return 0;
      const spec = obj.spec as { nodeName?: string; terminationGracePeriodSeconds?: number };
      const phase = (obj.status as { phase?: string } | undefined)?.phase;
      if (!spec?.nodeName || phase === 'Succeeded' || phase === 'Failed') return 0;
      return requested ?? spec.terminationGracePeriodSeconds ?? 30;
    };
    // reserve addresses of restored objects
    for (const p of api.store.list('/pods')) this.podIPs.reserve((p.status as { podIP?: string } | undefined)?.podIP ?? '');
    for (const s of api.store.list('/services')) this.serviceIPs.reserve((s.spec as { clusterIP?: string } | undefined)?.clusterIP ?? '');
    for (const crd of api.store.list('apiextensions.k8s.io/customresourcedefinitions')) api.registerCrd(crd);
    this.unsub = api.store.subscribe((e) => this.onEvent(e));
    for (const n of ['default', 'kube-system', 'kube-public', 'kube-node-lease']) {
      if (!api.tryGet(this.t('', 'namespaces'), undefined, n)) api.create(this.t('', 'namespaces'), undefined, { apiVersion: 'v1', kind: 'Namespace', metadata: { name: n } }, { fieldManager: MANAGER, internal: true });
    }
    if (!api.tryGet(this.t('', 'nodes'), undefined, 'harness-node')) {
      api.create(this.t('', 'nodes'), undefined, { apiVersion: 'v1', kind: 'Node', metadata: { name: 'harness-node', labels: { 'kubernetes.io/hostname': 'harness-node', 'topology.kubernetes.io/zone': 'harness' } }, status: { addresses: [{ type: 'InternalIP', address: '127.0.0.1' }], conditions: [{ type: 'Ready', status: 'True' }] } } as KObject, { fieldManager: MANAGER, internal: true });
    }
    if (serviceProxy) for (const s of api.store.list('/services')) this.syncProxy(s);
    this.timers.push(setInterval(() => this.kick(), 1000));
    this.kick();
  }

  private t(group: string, resource: string): ResourceType {
    const v = group === 'apps' || group === '' || group === 'apiextensions.k8s.io' ? 'v1' : 'v1';
    return this.api.type(group, v, resource)!;
  }

  async close(): Promise<void> {
    this.closed = true;
    this.unsub();
    for (const t of this.timers) clearInterval(t);
    for (const servers of this.proxies.values()) for (const s of servers) s.close();
    this.proxies.clear();
    const pods = this.api.store.list('/pods').filter((p) => this.podState.has(p.metadata.uid!));
    await Promise.all(pods.map((p) => this.runtime.stop(p, 0).catch(() => {})));
    await this.runtime.close?.();
  }

  /** Schedules a reconcile pass of every controller. */
  kick(): void {
    if (this.pending || this.closed) return;
    this.pending = true;
    setTimeout(() => {
      this.pending = false;
      this.reconcileAll();
    }, 10);
  }

  private onEvent(e: StoreEvent): void {
    if (e.key === 'apiextensions.k8s.io/customresourcedefinitions') {
      if (e.type === 'DELETED') {
        const spec = e.object.spec as { group: string; names: { plural: string } };
        this.api.removeType(spec.group, spec.names.plural);
        this.api.store.dropBucket(`${spec.group}/${spec.names.plural}`);
      } else this.api.registerCrd(e.object);
    }
    if (e.key === '/pods' && e.type === 'DELETED') {
      const uid = e.object.metadata.uid!;
      if (this.podState.has(uid) && this.podState.get(uid) !== 'stopping') {
        this.podState.set(uid, 'stopping');
        this.runtime.stop(e.object, 0).catch(() => {}).finally(() => this.podState.delete(uid));
      }
      this.podIPs.release((e.object.status as { podIP?: string } | undefined)?.podIP);
    }
    if (e.key === '/persistentvolumeclaims' && e.type === 'DELETED') this.reclaimVolume(e.object);
    if (e.key === '/services') {
      if (e.type === 'DELETED') {
        this.serviceIPs.release((e.object.spec as { clusterIP?: string } | undefined)?.clusterIP);
        this.closeProxy(e.object);
      } else if (this.serviceProxy) this.syncProxy(e.object);
    }
    this.kick();
  }

  /**
   * The volume of a deleted claim is deleted too (a dynamically provisioned volume's default
   * reclaim policy, Delete): at once when no pod uses it, else once the last pod using it has
   * stopped (what the pvc-protection finalizer achieves), before a replacement can start.
   */
  private reclaimVolume(pvc: KObject): void {
    const dir = pvc.metadata.annotations?.[HOST_PATH_ANNOTATION];
    if (!dir || !path.resolve(dir).startsWith(path.resolve(this.stateDir) + path.sep)) return;
    const users = this.api.list(this.t('', 'pods'), pvc.metadata.namespace).filter((p) => this.podState.has(p.metadata.uid!) && claimsOf(p).includes(pvc.metadata.name!));
    if (users.length === 0) this.removeVolumeDir(dir);
    else this.volumesToReclaim.add(dir);
  }

  private removeVolumeDir(dir: string): void {
    this.volumesToReclaim.delete(dir);
    // A claim of the same name made meanwhile owns the directory now.
    if (this.api.store.list('/persistentvolumeclaims').some((c) => c.metadata.annotations?.[HOST_PATH_ANNOTATION] === dir)) return;
    fs.rmSync(dir, { recursive: true, force: true });
    this.log(`volume ${dir} deleted with its claim`);
  }

  private reconcileAll(): void {
    if (this.running || this.closed) return;
    this.running = true;
    try {
      for (const [name, f] of [
        ['crd', () => this.reconcileCrds()],
        ['namespace', () => this.reconcileNamespaces()],
        ['gc', () => this.reconcileGc()],
        ['statefulset', () => this.reconcileStatefulSets()],
        ['pod', () => this.reconcilePods()],
      ] as const) {
        try {
          f();
        } catch (e) {
          this.log(`${name} controller: ${(e as Error).message}`);
        }
      }
    } finally {
      this.running = false;
    }
  }

  // ---------------------------------------------------------------- defaulting on write
  private installDefaulters(): void {
    const api = this.api;
    api.addDefaulter({ group: '', resource: 'namespaces' }, (o, old) => {
      o.metadata.labels = { ...(o.metadata.labels ?? {}), 'kubernetes.io/metadata.name': o.metadata.name! };
      if (!old) {
        o.spec = { finalizers: ['kubernetes'] };
        o.status = { phase: 'Active' };
      } else o.spec = clone(old.spec);
    });
    api.addDefaulter({ group: '', resource: 'services' }, (o, old) => {
      const spec = (isObj(o.spec) ? o.spec : (o.spec = {})) as Record<string, unknown>;
      const oldIP = (old?.spec as { clusterIP?: string } | undefined)?.clusterIP;
      if (oldIP && !spec.clusterIP) spec.clusterIP = oldIP;
      if (!spec.clusterIP) spec.clusterIP = this.serviceIPs.allocate();
      spec.clusterIPs = [spec.clusterIP];
      spec.type ??= 'ClusterIP';
      spec.sessionAffinity ??= 'None';
      spec.ipFamilies ??= ['IPv4'];
      spec.ipFamilyPolicy ??= 'SingleStack';
      spec.internalTrafficPolicy ??= 'Cluster';
      for (const p of (spec.ports as Record<string, unknown>[] | undefined) ?? []) {
        p.protocol ??= 'TCP';
        p.targetPort ??= p.port;
      }
      if (!old) o.status = { loadBalancer: {} };
    });
    api.addDefaulter({ group: '', resource: 'pods' }, (o, old) => {
      if (old) return;
      const spec = (isObj(o.spec) ? o.spec : (o.spec = {})) as Record<string, unknown>;
      spec.restartPolicy ??= 'Always';
      spec.terminationGracePeriodSeconds ??= 30;
      spec.dnsPolicy ??= 'ClusterFirst';
      spec.schedulerName ??= 'default-scheduler';
      spec.serviceAccountName ??= 'default';
      spec.serviceAccount ??= spec.serviceAccountName;
      spec.securityContext ??= {};
      spec.enableServiceLinks ??= true;
      for (const c of (spec.containers as Record<string, unknown>[] | undefined) ?? []) {
        c.imagePullPolicy ??= String(c.image ?? '').endsWith(':latest') || !String(c.image ?? '').includes(':') ? 'Always' : 'IfNotPresent';
        c.terminationMessagePath ??= '/dev/termination-log';
        c.terminationMessagePolicy ??= 'File';
        c.resources ??= {};
      }
      o.status = { phase: 'Pending', qosClass: 'BestEffort' };
    });
    api.addDefaulter({ group: '', resource: 'persistentvolumeclaims' }, (o, old) => {
      const spec = (isObj(o.spec) ? o.spec : (o.spec = {})) as Record<string, unknown>;
      spec.volumeMode ??= 'Filesystem';
      if (old) return;
      const dir = path.join(this.stateDir, 'volumes', o.metadata.namespace!, o.metadata.name!);
      fs.mkdirSync(dir, { recursive: true });
      o.metadata.annotations = { ...(o.metadata.annotations ?? {}), [HOST_PATH_ANNOTATION]: dir, 'pv.kubernetes.io/bind-completed': 'yes' };
      spec.volumeName ??= `pvc-${o.metadata.uid}`;
      const storage = (spec.resources as { requests?: { storage?: string } } | undefined)?.requests?.storage;
      o.status = { phase: 'Bound', accessModes: spec.accessModes ?? ['ReadWriteOnce'], ...(storage ? { capacity: { storage } } : {}) };
    });
    api.addDefaulter({ group: 'apps', resource: 'statefulsets' }, (o) => {
      const spec = (isObj(o.spec) ? o.spec : (o.spec = {})) as Record<string, unknown>;
      spec.replicas ??= 1;
      spec.podManagementPolicy ??= 'OrderedReady';
      spec.updateStrategy ??= { type: 'RollingUpdate', rollingUpdate: { partition: 0 } };
      const us = spec.updateStrategy as { type?: string; rollingUpdate?: { partition?: number } };
      us.type ??= 'RollingUpdate';
      if (us.type === 'RollingUpdate') { us.rollingUpdate ??= {}; us.rollingUpdate.partition ??= 0; }
      spec.revisionHistoryLimit ??= 10;
      spec.persistentVolumeClaimRetentionPolicy ??= { whenDeleted: 'Retain', whenScaled: 'Retain' };
      for (const v of (spec.volumeClaimTemplates as KObject[] | undefined) ?? []) {
        v.apiVersion ??= 'v1';
        v.kind ??= 'PersistentVolumeClaim';
        const vs = (isObj(v.spec) ? v.spec : (v.spec = {})) as Record<string, unknown>;
        vs.volumeMode ??= 'Filesystem';
        v.status ??= { phase: 'Pending' };
      }
    });
    api.addDefaulter({ group: 'apps', resource: 'deployments' }, (o) => {
      const spec = (isObj(o.spec) ? o.spec : (o.spec = {})) as Record<string, unknown>;
      spec.replicas ??= 1;
    });
    api.addDefaulter({ group: 'apiextensions.k8s.io', resource: 'customresourcedefinitions' }, (o, old) => {
      const spec = o.spec as { group?: string; names?: { plural?: string; kind?: string; singular?: string; listKind?: string }; versions?: { name: string; storage?: boolean }[] } | undefined;
      const causes: StatusCause[] = [];
      if (!spec?.group) causes.push({ reason: 'FieldValueRequired', message: 'Required value', field: 'spec.group' });
      if (!spec?.names?.plural) causes.push({ reason: 'FieldValueRequired', message: 'Required value', field: 'spec.names.plural' });
      if (!spec?.names?.kind) causes.push({ reason: 'FieldValueRequired', message: 'Required value', field: 'spec.names.kind' });
      if (!spec?.versions?.length) causes.push({ reason: 'FieldValueRequired', message: 'Required value', field: 'spec.versions' });
      if (spec?.group && spec.names?.plural && o.metadata.name !== `${spec.names.plural}.${spec.group}`) {
        causes.push({ reason: 'FieldValueInvalid', message: `Invalid value: "${o.metadata.name}": must be spec.names.plural+"."+spec.group`, field: 'metadata.name' });
      }
      // A stored CRD whose spec does not change (finalizers, labels) is not re-judged, so one stored
      // before a rule existed can still be deleted.
      if (!old || !deepEqual(old.spec, o.spec)) causes.push(...toCauses(validateCrd(o)));
      if (causes.length) throw errors.invalid('CustomResourceDefinition', 'apiextensions.k8s.io', o.metadata.name ?? '', causes);
      const names = spec!.names!;
      names.singular ??= names.kind!.toLowerCase();
      names.listKind ??= `${names.kind}List`;
      (spec as Record<string, unknown>).scope ??= 'Namespaced';
      if (!old) o.metadata.finalizers = [...new Set([...(o.metadata.finalizers ?? []), CRD_FINALIZER])];
      const prev = (old?.status as { conditions?: { type: string; lastTransitionTime?: string }[] } | undefined)?.conditions ?? [];
      const ltt = (type: string) => prev.find((c) => c.type === type)?.lastTransitionTime ?? nowIso();
      const conditions: Record<string, unknown>[] = [
        { type: 'NamesAccepted', status: 'True', lastTransitionTime: ltt('NamesAccepted'), reason: 'NoConflicts', message: 'no conflicts found' },
        { type: 'Established', status: 'True', lastTransitionTime: ltt('Established'), reason: 'InitialNamesAccepted', message: 'the initial names have been accepted' },
      ];
      if (o.metadata.deletionTimestamp) conditions.push({ type: 'Terminating', status: 'True', lastTransitionTime: ltt('Terminating'), reason: 'InstanceDeletionInProgress', message: 'CustomResource deletion is in progress' });
      const storage = spec!.versions!.find((v) => v.storage)?.name ?? spec!.versions![0]!.name;
      const stored = (old?.status as { storedVersions?: string[] } | undefined)?.storedVersions ?? [];
      o.status = { conditions, acceptedNames: clone(names), storedVersions: [...new Set([...stored, storage])] };
    });
  }

  // ---------------------------------------------------------------- CRDs
  private reconcileCrds(): void {
    const crdT = this.t('apiextensions.k8s.io', 'customresourcedefinitions');
    for (const crd of this.api.list(crdT, undefined)) {
      if (!crd.metadata.deletionTimestamp) continue;
      const spec = crd.spec as { group: string; names: { plural: string } };
      const key = `${spec.group}/${spec.names.plural}`;
      const items = this.api.store.list(key);
      const t = this.api.allTypes().find((x) => x.t.group === spec.group && x.t.resource === spec.names.plural)?.t;
      if (items.length && t) {
        for (const o of items) if (!o.metadata.deletionTimestamp) this.safe(() => this.api.delete(t, o.metadata.namespace, o.metadata.name!, {}));
        continue;
      }
      if (crd.metadata.finalizers?.includes(CRD_FINALIZER)) {
        const next = clone(crd);
        next.metadata.finalizers = crd.metadata.finalizers.filter((f) => f !== CRD_FINALIZER);
        delete next.metadata.resourceVersion;
        this.safe(() => this.api.update(crdT, undefined, crd.metadata.name!, next, { fieldManager: MANAGER }));
      }
    }
  }

  private safe(f: () => unknown): void {
    try {
      f();
    } catch (e) {
      ignoreGone(e);
    }
  }

  // ---------------------------------------------------------------- namespaces
  private namespacedTypes(): ResourceType[] {
    const seen = new Set<string>();
    const out: ResourceType[] = [];
    for (const { t } of this.api.allTypes()) {
      const k = storageKey(t);
      if (!t.namespaced || seen.has(k) || t.group === 'events.k8s.io') continue;
      seen.add(k);
      out.push(t);
    }
    return out;
  }

  private reconcileNamespaces(): void {
    const nsT = this.t('', 'namespaces');
    const saT = this.t('', 'serviceaccounts');
    for (const ns of this.api.list(nsT, undefined)) {
      const name = ns.metadata.name!;
      if (!ns.metadata.deletionTimestamp) {
        if (!this.api.tryGet(saT, name, 'default')) this.safe(() => this.api.create(saT, name, { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'default' } }, { fieldManager: MANAGER, internal: true }));
        continue;
      }
      let remaining = 0;
      for (const t of this.namespacedTypes()) {
        for (const o of this.api.store.list(storageKey(t), name)) {
          remaining++;
          if (!o.metadata.deletionTimestamp) this.safe(() => this.api.delete(t, name, o.metadata.name!, { propagationPolicy: 'Background' }));
        }
      }
      if (remaining > 0) continue;
      const next = clone(ns);
      (next.spec as { finalizers?: string[] }).finalizers = [];
      if (next.metadata.finalizers?.length) this.api.internalWrite(nsT, next, ns);
      else this.api.forceRemove(nsT, ns);
    }
  }

  // ---------------------------------------------------------------- garbage collector
  private reconcileGc(): void {
    const all: { t: ResourceType; o: KObject }[] = [];
    const seen = new Set<string>();
    for (const { t } of this.api.allTypes()) {
      const k = storageKey(t);
      if (seen.has(k) || t.group === 'events.k8s.io') continue;
      seen.add(k);
      for (const o of this.api.store.list(k)) all.push({ t, o });
    }
    const byUid = new Map(all.map((x) => [x.o.metadata.uid!, x]));
    const dependents = new Map<string, { t: ResourceType; o: KObject }[]>();
    for (const x of all) for (const r of x.o.metadata.ownerReferences ?? []) dependents.set(r.uid, [...(dependents.get(r.uid) ?? []), x]);
    for (const { t, o } of all) {
      const refs = o.metadata.ownerReferences ?? [];
      if (refs.length) {
        const present = refs.filter((r) => {
          const owner = byUid.get(r.uid);
          return owner && owner.o.metadata.name === r.name && (!owner.t.namespaced || owner.o.metadata.namespace === o.metadata.namespace);
        });
        const resolvable = refs.every((r) => this.api.typeForKind(r.apiVersion, r.kind));
        if (present.length === 0 && resolvable && !o.metadata.deletionTimestamp) {
          this.safe(() => this.api.delete(t, o.metadata.namespace, o.metadata.name!, { propagationPolicy: 'Background', preconditions: { uid: o.metadata.uid } }));
          continue;
        }
        if (present.length < refs.length && resolvable && present.length > 0) {
          const next = this.api.out(t, o);
          next.metadata.ownerReferences = present;
          this.safe(() => this.api.update(t, o.metadata.namespace, o.metadata.name!, next, { fieldManager: 'generic-garbage-collector' }));
          continue;
        }
        // foreground deletion of an owner: delete its dependents first
        for (const r of refs) {
          const owner = byUid.get(r.uid);
          if (owner?.o.metadata.deletionTimestamp && owner.o.metadata.finalizers?.includes('foregroundDeletion') && !o.metadata.deletionTimestamp) {
            this.safe(() => this.api.delete(t, o.metadata.namespace, o.metadata.name!, { propagationPolicy: 'Foreground' }));
            break;
          }
        }
      }
      if (o.metadata.deletionTimestamp) {
        const fin = o.metadata.finalizers ?? [];
        const deps = (dependents.get(o.metadata.uid!) ?? []).filter((d) => this.api.store.get(storageKey(d.t), d.o.metadata.namespace, d.o.metadata.name!));
        if (fin.includes('orphan')) {
          for (const d of deps) {
            const next = this.api.out(d.t, d.o);
            next.metadata.ownerReferences = (next.metadata.ownerReferences ?? []).filter((r) => r.uid !== o.metadata.uid);
            if (!next.metadata.ownerReferences.length) delete next.metadata.ownerReferences;
            this.safe(() => this.api.update(d.t, d.o.metadata.namespace, d.o.metadata.name!, next, { fieldManager: 'generic-garbage-collector' }));
          }
          this.removeFinalizer(t, o, 'orphan');
        } else if (fin.includes('foregroundDeletion')) {
          const blocking = deps.filter((d) => d.o.metadata.ownerReferences?.some((r) => r.uid === o.metadata.uid && r.blockOwnerDeletion));
          if (blocking.length === 0) this.removeFinalizer(t, o, 'foregroundDeletion');
        }
      }
    }
  }

  private removeFinalizer(t: ResourceType, o: KObject, f: string): void {
    const next = this.api.out(t, o);
    next.metadata.finalizers = (next.metadata.finalizers ?? []).filter((x) => x !== f);
    this.safe(() => this.api.update(t, o.metadata.namespace, o.metadata.name!, next, { fieldManager: 'generic-garbage-collector' }));
  }

  // ---------------------------------------------------------------- statefulsets
  private reconcileStatefulSets(): void {
    const stsT = this.t('apps', 'statefulsets');
    for (const sts of this.api.list(stsT, undefined)) {
      if (sts.metadata.deletionTimestamp) continue;
      try {
        this.reconcileStatefulSet(stsT, sts);
      } catch (e) {
        if (!(e instanceof ApiError)) throw e;
        this.log(`statefulset ${sts.metadata.namespace}/${sts.metadata.name}: ${e.message}`);
      }
    }
  }

  private podReady(p: KObject): boolean {
    const st = p.status as { phase?: string; conditions?: { type: string; status: string }[] } | undefined;
    return st?.phase === 'Running' && !!st.conditions?.some((c) => c.type === 'Ready' && c.status === 'True');
  }

  private reconcileStatefulSet(stsT: ResourceType, sts: KObject): void {
    const podT = this.t('', 'pods');
    const pvcT = this.t('', 'persistentvolumeclaims');
    const ns = sts.metadata.namespace!;
    const name = sts.metadata.name!;
    const spec = sts.spec as {
      replicas: number; serviceName?: string; podManagementPolicy: string; selector?: unknown;
      updateStrategy: { type: string; rollingUpdate?: { partition?: number } };
      template: { metadata?: { labels?: Record<string, string>; annotations?: Record<string, string> }; spec?: Record<string, unknown> };
      volumeClaimTemplates?: KObject[];
    };
    const status = (sts.status ?? {}) as Record<string, unknown>;
    const updateRevision = `${name}-${shortHash(stableStringify(spec.template), 10)}`;
    const currentRevision = (status.currentRevision as string | undefined) ?? updateRevision;
    const revs = this.revisions.get(sts.metadata.uid!) ?? new Map<string, unknown>();
    this.revisions.set(sts.metadata.uid!, revs);
    revs.set(updateRevision, clone(spec.template));
    const parallel = spec.podManagementPolicy === 'Parallel';
    const partition = spec.updateStrategy.type === 'RollingUpdate' ? (spec.updateStrategy.rollingUpdate?.partition ?? 0) : 0;
    const owned = this.api.list(podT, ns).filter((p) => p.metadata.ownerReferences?.some((r) => r.uid === sts.metadata.uid));
    const ordinalOf = (p: KObject) => {
      const m = p.metadata.name!.match(new RegExp(`^${name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}-(\\d+)$`));
      return m ? Number(m[1]) : -1;
    };
    const pods = new Map<number, KObject>();
    for (const p of owned) if (ordinalOf(p) >= 0) pods.set(ordinalOf(p), p);
    const revOf = (p: KObject) => p.metadata.labels?.['controller-revision-hash'];

    const createPod = (i: number) => {
      const rev = spec.updateStrategy.type === 'RollingUpdate' && i < partition && revs.has(currentRevision) ? currentRevision : updateRevision;
      const tmpl = clone((revs.get(rev) ?? spec.template) as typeof spec.template);
      const podName = `${name}-${i}`;
      for (const vct of spec.volumeClaimTemplates ?? []) {
        const claim = `${vct.metadata.name}-${podName}`;
        if (!this.api.tryGet(pvcT, ns, claim)) {
          const selLabels = (isObj(spec.selector) ? (spec.selector.matchLabels as Record<string, string>) : undefined) ?? {};
          const pvc: KObject = { apiVersion: 'v1', kind: 'PersistentVolumeClaim', metadata: { name: claim, namespace: ns, labels: { ...(vct.metadata.labels ?? {}), ...selLabels }, ...(vct.metadata.annotations ? { annotations: vct.metadata.annotations } : {}) }, spec: clone(vct.spec) };
          this.api.create(pvcT, ns, pvc, { fieldManager: 'kube-controller-manager', internal: true });
        }
      }
      const podSpec = clone(tmpl.spec ?? {}) as Record<string, unknown>;
      podSpec.hostname = podName;
      if (spec.serviceName) podSpec.subdomain = spec.serviceName;
      const volumes = ((podSpec.volumes as { name: string }[] | undefined) ?? []).filter((v) => !(spec.volumeClaimTemplates ?? []).some((c) => c.metadata.name === v.name));
      for (const vct of spec.volumeClaimTemplates ?? []) volumes.push({ name: vct.metadata.name!, persistentVolumeClaim: { claimName: `${vct.metadata.name}-${podName}` } } as { name: string });
      if (volumes.length) podSpec.volumes = volumes;
      const pod: KObject = {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: {
          name: podName,
          namespace: ns,
          labels: { ...(tmpl.metadata?.labels ?? {}), 'controller-revision-hash': rev, 'statefulset.kubernetes.io/pod-name': podName, 'apps.kubernetes.io/pod-index': String(i) },
          ...(tmpl.metadata?.annotations ? { annotations: tmpl.metadata.annotations } : {}),
          ownerReferences: [{ apiVersion: 'apps/v1', kind: 'StatefulSet', name, uid: sts.metadata.uid!, controller: true, blockOwnerDeletion: true }],
        },
        spec: podSpec,
      };
      this.api.create(podT, ns, pod, { fieldManager: 'kube-controller-manager', internal: true });
    };

    let blocked = false;
    for (let i = 0; i < spec.replicas; i++) {
      const p = pods.get(i);
      if (!p) {
        createPod(i);
        if (!parallel) { blocked = true; break; }
        continue;
      }
      const phase = (p.status as { phase?: string } | undefined)?.phase;
      if ((phase === 'Failed' || phase === 'Succeeded') && !p.metadata.deletionTimestamp) {
        this.safe(() => this.api.delete(podT, ns, p.metadata.name!, {}));
        if (!parallel) { blocked = true; break; }
        continue;
      }
      if (!parallel && (p.metadata.deletionTimestamp || !this.podReady(p))) { blocked = true; break; }
    }
    const condemned = [...pods.entries()].filter(([i]) => i >= spec.replicas).sort((a, b) => b[0] - a[0]);
    if (!blocked) {
      for (const [, p] of condemned) {
        if (p.metadata.deletionTimestamp) { if (!parallel) break; continue; }
        this.safe(() => this.api.delete(podT, ns, p.metadata.name!, {}));
        if (!parallel) break;
      }
    }
    const active = [...pods.entries()].filter(([i]) => i < spec.replicas).map(([, p]) => p);
    if (!blocked && condemned.length === 0 && spec.updateStrategy.type === 'RollingUpdate') {
      const allHealthy = active.length === spec.replicas && active.every((p) => !p.metadata.deletionTimestamp && this.podReady(p));
      if (allHealthy) {
        const stale = [...pods.entries()].filter(([i, p]) => i >= partition && i < spec.replicas && revOf(p) !== updateRevision).sort((a, b) => b[0] - a[0])[0];
        if (stale) this.safe(() => this.api.delete(podT, ns, stale[1].metadata.name!, {}));
      }
    }
    // status
    const live = this.api.list(podT, ns).filter((p) => p.metadata.ownerReferences?.some((r) => r.uid === sts.metadata.uid) && ordinalOf(p) >= 0);
    const counted = live.filter((p) => !p.metadata.deletionTimestamp);
    const ready = counted.filter((p) => this.podReady(p)).length;
    const updated = counted.filter((p) => revOf(p) === updateRevision).length;
    let current = counted.filter((p) => revOf(p) === currentRevision).length;
    let curRev = currentRevision;
    if (updated === spec.replicas && counted.length === spec.replicas && ready === spec.replicas) { curRev = updateRevision; current = updated; }
    if (curRev !== updateRevision && updated === spec.replicas && spec.updateStrategy.type === 'OnDelete') { curRev = updateRevision; current = updated; }
    const next: Record<string, unknown> = { observedGeneration: sts.metadata.generation, replicas: counted.length };
    if (ready) next.readyReplicas = ready;
    if (current) next.currentReplicas = current;
    if (updated) next.updatedReplicas = updated;
    next.currentRevision = curRev;
    next.updateRevision = updateRevision;
    next.collisionCount = 0;
    next.availableReplicas = ready;
    if (!deepEqual(next, sts.status)) {
      const o = this.api.out(stsT, sts);
      o.status = next;
      delete o.metadata.resourceVersion;
      this.api.update(stsT, ns, name, o, { subresource: 'status', fieldManager: 'kube-controller-manager' });
    }
  }

  // ---------------------------------------------------------------- pods (the stand-in kubelet)
  private reconcilePods(): void {
    const podT = this.t('', 'pods');
    for (const pod of this.api.list(podT, undefined)) {
      const uid = pod.metadata.uid!;
      const state = this.podState.get(uid);
      if (pod.metadata.deletionTimestamp) {
        if (state === 'stopping') continue;
        this.podState.set(uid, 'stopping');
        const grace = pod.metadata.deletionGracePeriodSeconds ?? 0;
        const stop = state ? this.runtime.stop(pod, grace) : Promise.resolve();
        stop.catch((e: unknown) => this.log(`stop ${pod.metadata.name}: ${(e as Error).message}`)).finally(() => {
          this.podState.delete(uid);
          for (const claim of claimsOf(pod)) {
            const dir = path.join(this.stateDir, 'volumes', pod.metadata.namespace!, claim);
            if (this.volumesToReclaim.has(dir)) this.removeVolumeDir(dir);
          }
          const cur = this.api.tryGet(podT, pod.metadata.namespace, pod.metadata.name!);
          if (cur && cur.metadata.uid === uid && !cur.metadata.finalizers?.length) this.api.forceRemove(podT, cur);
          this.kick();
        });
        continue;
      }
      if (state) continue;
      const phase = (pod.status as { phase?: string } | undefined)?.phase;
      if (phase === 'Succeeded' || phase === 'Failed') continue;
      this.startPod(podT, pod);
    }
  }

  private startPod(podT: ResourceType, pod: KObject): void {
    const ns = pod.metadata.namespace!;
    const spec = pod.spec as { volumes?: Record<string, unknown>[]; nodeName?: string };
    const podDir = path.join(this.stateDir, 'pods', `${ns}_${pod.metadata.name}_${pod.metadata.uid!.slice(0, 8)}`);
    const volumes: Record<string, string> = {};
    for (const v of spec.volumes ?? []) {
      const vname = v.name as string;
      if (isObj(v.persistentVolumeClaim)) {
        const pvc = this.api.tryGet(this.t('', 'persistentvolumeclaims'), ns, v.persistentVolumeClaim.claimName as string);
        const dir = pvc?.metadata.annotations?.[HOST_PATH_ANNOTATION];
        if (!dir) return; // wait for the claim
        volumes[vname] = dir;
      } else if (isObj(v.configMap) || isObj(v.secret)) {
        const dir = path.join(podDir, 'volumes', vname);
        fs.mkdirSync(dir, { recursive: true });
        const src = isObj(v.configMap)
          ? this.api.tryGet(this.t('', 'configmaps'), ns, v.configMap.name as string)
          : this.api.tryGet(this.t('', 'secrets'), ns, (v.secret as { secretName: string }).secretName);
        const data = { ...((src?.data as Record<string, string>) ?? {}) };
        for (const [k, val] of Object.entries(data)) fs.writeFileSync(path.join(dir, k), isObj(v.secret) ? Buffer.from(val, 'base64') : val);
        volumes[vname] = dir;
      } else {
        const dir = path.join(podDir, 'volumes', vname);
        fs.mkdirSync(dir, { recursive: true });
        volumes[vname] = dir;
      }
    }
    fs.mkdirSync(podDir, { recursive: true });
    const uid = pod.metadata.uid!;
    this.podState.set(uid, 'starting');
    const { hostname, subdomain } = pod.spec as { hostname?: string; subdomain?: string };
    const stickyKey = hostname && subdomain ? `${ns}/${hostname}.${subdomain}` : undefined;
    const podIP = (pod.status as { podIP?: string } | undefined)?.podIP ?? this.podIPs.allocate(stickyKey ? this.stickyIPs.get(stickyKey) : undefined);
    if (stickyKey) this.stickyIPs.set(stickyKey, podIP);
    let cur = this.api.out(podT, pod);
    if (!spec.nodeName) {
      (cur.spec as Record<string, unknown>).nodeName = 'harness-node';
      delete cur.metadata.resourceVersion;
      cur = this.api.update(podT, ns, pod.metadata.name!, cur, { fieldManager: 'harness-scheduler' });
    }
    const now = nowIso();
    this.writePodStatus(podT, cur, {
      phase: 'Pending',
      hostIP: '127.0.0.1',
      hostIPs: [{ ip: '127.0.0.1' }],
      podIP,
      podIPs: [{ ip: podIP }],
      startTime: now,
      conditions: [{ type: 'PodScheduled', status: 'True', lastProbeTime: null, lastTransitionTime: now }],
    });
    const report = (r: PodStatusReport) => {
      if (this.closed) return;
      const live = this.api.tryGet(podT, ns, pod.metadata.name!);
      if (!live || live.metadata.uid !== uid) return;
      this.podState.set(uid, 'running');
      const prev = (live.status ?? {}) as Record<string, unknown>;
      const containers = ((live.spec as { containers?: { name: string; image?: string }[] }).containers ?? []);
      const ready = r.ready ?? (r.containers ? r.containers.every((c) => c.ready) : false);
      const oldConds = (prev.conditions as { type: string; status: string; lastTransitionTime?: string }[] | undefined) ?? [];
      const cond = (type: string, status: boolean) => {
        const s = status ? 'True' : 'False';
        const o = oldConds.find((c) => c.type === type);
        return { type, status: s, lastProbeTime: null, lastTransitionTime: o && o.status === s ? o.lastTransitionTime : nowIso() };
      };
      const statuses = (specs: { name: string; image?: string }[], reports: ContainerStatusReport[] | undefined) => specs.map((c) => {
        const rep = reports?.find((x) => x.name === c.name);
        const st = rep?.state ?? (r.phase === 'Running' ? 'running' : r.phase === 'Pending' ? 'waiting' : 'terminated');
        const state = st === 'running' ? { running: { startedAt: prev.startTime ?? nowIso() } } : st === 'waiting' ? { waiting: { reason: rep?.reason ?? 'ContainerCreating' } } : { terminated: { exitCode: rep?.exitCode ?? 0, reason: rep?.reason ?? 'Completed' } };
        return { name: c.name, image: c.image ?? '', imageID: '', ready: rep?.ready ?? ready, restartCount: rep?.restartCount ?? 0, started: st === 'running', state };
      });
      const initSpecs = ((live.spec as { initContainers?: { name: string; image?: string }[] }).initContainers ?? []);
      const initStatuses = statuses(initSpecs, r.initContainers);
      // the kubelet's Initialized: every init container has exited 0
      const initialized = initStatuses.every((s) => (s.state as { terminated?: { exitCode: number } }).terminated?.exitCode === 0);
      const next: Record<string, unknown> = {
        ...prev,
        phase: r.phase,
        conditions: [cond('PodReadyToStartContainers', true), cond('Initialized', initialized), cond('Ready', ready), cond('ContainersReady', ready), cond('PodScheduled', true)],
        ...(initSpecs.length ? { initContainerStatuses: initStatuses } : {}),
        containerStatuses: statuses(containers, r.containers),
      };
      if (r.reason) next.reason = r.reason; else delete next.reason;
      if (r.message) next.message = r.message; else delete next.message;
      this.writePodStatus(podT, live, next);
    };
    const ctxPod = this.api.out(podT, this.api.tryGet(podT, ns, pod.metadata.name!) ?? cur);
    Promise.resolve()
      .then(() => this.runtime.start(ctxPod, { podIP, volumes, podDir, report }))
      .catch((e: unknown) => report({ phase: 'Failed', ready: false, reason: 'StartError', message: (e as Error).message }));
  }

  private writePodStatus(podT: ResourceType, pod: KObject, status: Record<string, unknown>): void {
    const o = this.api.out(podT, pod);
    o.status = status;
    delete o.metadata.resourceVersion;
    this.safe(() => this.api.update(podT, pod.metadata.namespace, pod.metadata.name!, o, { subresource: 'status', fieldManager: 'kubelet' }));
  }

  // ---------------------------------------------------------------- service proxy
  private proxyKey(s: KObject): string {
    return `${s.metadata.namespace}/${s.metadata.name}`;
  }

  private closeProxy(s: KObject): void {
    for (const srv of this.proxies.get(this.proxyKey(s)) ?? []) srv.close();
    this.proxies.delete(this.proxyKey(s));
  }

  /** Listens on clusterIP:port for each Service port and forwards to a ready selected pod. */
  private syncProxy(s: KObject): void {
    const spec = s.spec as { clusterIP?: string; ports?: { port: number; targetPort?: number | string; protocol?: string }[]; selector?: Record<string, string> };
    const key = this.proxyKey(s);
    const sig = JSON.stringify([spec.clusterIP, spec.ports]);
    const existing = this.proxies.get(key) as (net.Server[] & { sig?: string }) | undefined;
    if (existing?.sig === sig) return;
    this.closeProxy(s);
    if (!spec.clusterIP || spec.clusterIP === 'None' || !spec.clusterIP.startsWith('127.')) return;
    const servers: net.Server[] & { sig?: string } = [];
    servers.sig = sig;
    const ns = s.metadata.namespace!;
    for (const port of spec.ports ?? []) {
      if ((port.protocol ?? 'TCP') !== 'TCP') continue;
      const srv = net.createServer((sock) => {
        const svc = this.api.tryGet(this.t('', 'services'), ns, s.metadata.name!);
        const sel = (svc?.spec as { selector?: Record<string, string> } | undefined)?.selector;
        const pods = sel ? this.api.list(this.t('', 'pods'), ns, labelSelectorToString({ matchLabels: sel })).filter((p) => this.podReady(p) && !p.metadata.deletionTimestamp) : [];
        const pod = pods[Math.floor(Math.random() * pods.length)];
        if (!pod) { sock.destroy(); return; }
        let target = port.targetPort ?? port.port;
        if (typeof target === 'string') {
          const named = ((pod.spec as { containers?: { ports?: { name?: string; containerPort: number }[] }[] }).containers ?? []).flatMap((c) => c.ports ?? []).find((p) => p.name === target);
          target = named?.containerPort ?? Number(target);
        }
        // From the Service's address, not 127.0.0.1: to the pod, a client that comes through a
        // Service comes from elsewhere (the runtime's PostgreSQL trusts 127.0.0.1 as the pod's loopback).
        const up = net.connect({ port: Number(target), host: (pod.status as { podIP: string }).podIP, localAddress: spec.clusterIP });
        sock.pipe(up).pipe(sock);
        up.on('error', () => sock.destroy());
        sock.on('error', () => up.destroy());
      });
      srv.on('error', (e) => this.log(`service proxy ${key}:${port.port}: ${e.message}`));
      srv.listen(port.port, spec.clusterIP);
      servers.push(srv);
    }
    this.proxies.set(key, servers);
  }
}

export { parseLabelSelector };

function claimsOf(pod: KObject): string[] {
  return ((pod.spec as { volumes?: { persistentVolumeClaim?: { claimName: string } }[] }).volumes ?? []).flatMap((v) => (v.persistentVolumeClaim ? [v.persistentVolumeClaim.claimName] : []));
}
