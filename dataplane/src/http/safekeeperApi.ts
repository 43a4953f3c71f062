// The safekeeper's HTTP API (ARCHITECTURE.md §7): status, tenants and timelines, metrics,
// liveness and readiness.
import type { Express, Request } from 'express';
import { createApp, finishApp, requireAuth } from './server.js';
import { ApiError, badRequest, notFound } from './errors.js';
import { isValidId, newId } from '../common/ids.js';
import type { SafekeeperContext } from '../safekeeper/context.js';
import type {
  ApiErrorJson, HealthJson, ReadyJson, SafekeeperDiskJson, SafekeeperStatusJson, TenantCreatedJson, TenantDeletedJson, TenantListJson,
  TimelineCreatedJson, TimelineListJson, TimelineStatusJson,
} from '../api/index.js';

export const VERSION = '0.1.0';

export function safekeeperApp(ctx: SafekeeperContext, state: { ready: () => boolean; startedAt: number }): Express {
  const app = createApp();
  const auth = requireAuth(ctx.auth);
  const adminOnly = requireAuth(ctx.auth, { adminOnly: true });

  // Probes and metrics stay open: kubelet and Prometheus carry no token.
  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' } satisfies HealthJson);
  });
  app.get('/readyz', (_req, res) => {
    if (state.ready()) res.json({ status: 'ready' } satisfies ReadyJson);
    else res.status(503).json({ error: 'not ready: storage is still loading', code: 'not_ready' } satisfies ApiErrorJson);
  });
  app.get('/metrics', async (_req, res) => {
    res.set('content-type', ctx.metrics.registry.contentType);
    res.send(await ctx.metrics.registry.metrics());
  });
  app.get('/v1/status', async (_req, res) => {
    const wb = ctx.walBackup;
    const disk = ctx.disk ? await ctx.disk.measure() : null;
    res.json({
      id: ctx.nodeId,
      version: VERSION,
      uptime_seconds: (Date.now() - state.startedAt) / 1000,
      remote_storage: wb ? { url: wb.url, usable: wb.storeUsable, error: wb.checkError ?? null, error_code: wb.checkErrorCode ?? null } : null,
      ...(disk && ({
        disk_used_bytes: disk.usedBytes.toString(),
        disk_total_bytes: disk.totalBytes.toString(),
        disk_high_water: disk.highWater,
        disk_reserve_bytes: disk.reserveBytes.toString(),
      } satisfies SafekeeperDiskJson)),
    } satisfies SafekeeperStatusJson);
  });

  app.get('/v1/tenants', auth, (_req, res) => {
    res.json({ tenants: ctx.registry.listTenants() } satisfies TenantListJson);
  });
  app.post('/v1/tenants', auth, async (req, res) => {
    const tenantId = optionalId(req, 'tenant_id') ?? newId();
    await ctx.registry.createTenant(tenantId);
    ctx.log.info({ tenant_id: tenantId }, 'tenant created');
    res.status(201).json({ tenant_id: tenantId } satisfies TenantCreatedJson);
  });
  app.delete('/v1/tenants/:tenant_id', adminOnly, async (req, res) => {
    const tenantId = pathId(req, 'tenant_id');
    await ctx.registry.deleteTenant(tenantId);
    ctx.log.info({ tenant_id: tenantId }, 'tenant deleted');
    res.json({ tenant_id: tenantId, deleted: true } satisfies TenantDeletedJson);
  });
  app.get('/v1/tenants/:tenant_id/timelines', auth, (req, res) => {
    const tenantId = pathId(req, 'tenant_id');
    res.json({ tenant_id: tenantId, timelines: ctx.registry.listTimelines(tenantId) } satisfies TimelineListJson);
  });
  app.post('/v1/tenants/:tenant_id/timelines', auth, async (req, res) => {
    const tenantId = pathId(req, 'tenant_id');
    const timelineId = optionalId(req, 'timeline_id') ?? newId();
    await ctx.registry.createTimeline(tenantId, timelineId);
    ctx.log.info({ tenant_id: tenantId, timeline_id: timelineId }, 'timeline created');
    res.status(201).json({ tenant_id: tenantId, timeline_id: timelineId } satisfies TimelineCreatedJson);
  });
  app.get('/v1/tenants/:tenant_id/timelines/:timeline_id', auth, (req, res) => {
    const tenantId = pathId(req, 'tenant_id');
    const timelineId = pathId(req, 'timeline_id');
    const tl = ctx.registry.getTimeline(tenantId, timelineId);
    if (!tl) {
      if (!ctx.registry.hasTenant(tenantId)) throw notFound('tenant_not_found', `tenant ${tenantId} does not exist`);
      // A timeline on disk that failed to load exists: report why it is not served.
      const broken = ctx.registry.brokenReason(tenantId, timelineId);
      if (broken) throw new ApiError(500, 'timeline_broken', `timeline ${timelineId} of tenant ${tenantId} is unavailable: ${broken}`);
      throw notFound('timeline_not_found', `timeline ${timelineId} of tenant ${tenantId} does not exist`);
    }
    res.json({ ...tl.statusJson(), offload: ctx.walBackup?.timelineStatus(tl) ?? { enabled: false } } satisfies TimelineStatusJson);
  });

  finishApp(app, ctx.log);
  return app;
}

function pathId(req: Request, name: 'tenant_id' | 'timeline_id'): string {
  const v = req.params[name];
  if (!isValidId(v)) throw badRequest(`invalid_${name}`, `invalid ${name} "${String(v).slice(0, 80)}" in path: expected 32 lowercase hex characters`);
  return v;
}

function optionalId(req: Request, name: 'tenant_id' | 'timeline_id'): string | undefined {
  const body: unknown = req.body ?? {};
  if (typeof body !== 'object' || Array.isArray(body) || body === null) throw badRequest('bad_body', 'request body must be a JSON object');
  const v = (body as Record<string, unknown>)[name];
  if (v === undefined) return undefined;
  if (!isValidId(v)) throw badRequest(`invalid_${name}`, `invalid ${name} ${JSON.stringify(v).slice(0, 80)}: expected 32 lowercase hex characters`);
  return v;
}
