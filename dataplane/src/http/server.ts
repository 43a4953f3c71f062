// Shared express plumbing for the safekeeper's and proposer's HTTP APIs: JSON errors,
// bearer-token auth, a listener that reports its bound address.
import express, { type Express, type NextFunction, type Request, type Response } from 'express';
import type { Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { ApiError, toApiError } from './errors.js';
import { AuthError, authorize, type Authenticator, type Claims } from '../auth/jwt.js';
import type { Logger } from '../common/log.js';
import type { ApiErrorJson } from '../api/index.js';

export function createApp(): Express {
  const app = express();
  app.disable('x-powered-by');
  app.use(express.json({ limit: '64kb' }));
  return app;
}

/** Installs the final handlers: unknown routes are 404 JSON, every error becomes {"error","code"}. */
export function finishApp(app: Express, log: Logger): void {
  app.use((req: Request, _res: Response, next: NextFunction) => {
    next(new ApiError(404, 'not_found', `no route for ${req.method} ${req.path}`));
  });
  app.use((thrown: unknown, req: Request, res: Response, _next: NextFunction) => {
    void _next;
    const err = toApiError(thrown);
    if (err instanceof ApiError || err instanceof AuthError) {
      const code = err instanceof ApiError ? err.code : err.status === 401 ? 'unauthorized' : 'forbidden';
      res.status(err.status).json({ error: err.message, code } satisfies ApiErrorJson);
      return;
    }
    const e = err as { type?: string; status?: number; message?: string };
    if (e?.type === 'entity.parse.failed') {
      res.status(400).json({ error: `request body is not valid JSON: ${e.message}`, code: 'bad_json' } satisfies ApiErrorJson);
      return;
    }
    if (e?.type === 'entity.too.large') {
      res.status(413).json({ error: 'request body too large (limit 64 KiB)', code: 'body_too_large' } satisfies ApiErrorJson);
      return;
    }
    // The router marks a path parameter that is not valid percent-encoding (`/v1/tenants/%zz`)
    // as a 400 URIError: the client's mistake, not ours.
    if (err instanceof URIError) {
      res.status(400).json({ error: `malformed URL: ${err.message}`, code: 'bad_url' } satisfies ApiErrorJson);
      return;
    }
    log.error({ err, method: req.method, path: req.path }, 'internal error in HTTP handler');
    res.status(500).json({ error: `internal error: ${e?.message ?? String(err)}`, code: 'internal' } satisfies ApiErrorJson);
  });
}

/**
 * Route guard: with auth on, requires a bearer JWT allowed for the route's tenant
 * (`:tenant_id` param) or, for routes without one, an admin token.
 */
export function requireAuth(auth: Authenticator | undefined, opts: { adminOnly?: boolean } = {}) {
  return async (req: Request, _res: Response, next: NextFunction) => {
    if (!auth) return next();
    try {
      const header = req.headers.authorization;
      const token = header?.startsWith('Bearer ') ? header.slice(7).trim() : undefined;
      const claims: Claims = await auth.verify(token);
      // Management of tenants themselves (create, delete) is for admins; tenant tokens reach
      // only their tenant's timelines.
      const tenantId = opts.adminOnly ? undefined : typeof req.params.tenant_id === 'string' ? req.params.tenant_id : undefined;
      authorize(claims, tenantId);
      (req as Request & { claims?: Claims }).claims = claims;
      next();
    } catch (err) {
      next(err);
    }
  };
}

/** Serves `app` on `hostPort`; over HTTPS when `tls` (PEM certificate chain and key) is given. */
export async function listen(app: Express, hostPort: string, tls?: { cert: Buffer; key: Buffer }): Promise<{ server: Server; address: AddressInfo }> {
  const { host, port } = splitHostPort(hostPort);
  return new Promise((resolve, reject) => {
    const server: Server = tls ? createHttpsServer({ cert: tls.cert, key: tls.key }, app).listen(port, host) : app.listen(port, host);
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(err.code === 'EADDRINUSE' ? new Error(`cannot listen on ${hostPort}: address already in use`) : err),
    );
    server.once('listening', () => resolve({ server, address: server.address() as AddressInfo }));
  });
}

export function splitHostPort(hostPort: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(hostPort);
  if (!m || Number(m[3]) > 65535) throw new Error(`invalid address "${hostPort}": expected HOST:PORT`);
  return { host: m[1] ?? (m[2] || '0.0.0.0'), port: Number(m[3]) };
}
