// JWT authentication shared by the safekeeper's HTTP API and its Postgres-protocol port.
// A token's `scope` is `admin` (everything) or `tenant` (only requests about its `tenant_id`).
import { readFileSync } from 'node:fs';
import { createPublicKey, createPrivateKey, type KeyObject } from 'node:crypto';
import { jwtVerify, SignJWT, errors as joseErrors } from 'jose';

export type Scope = 'admin' | 'tenant';

export interface Claims {
  scope: Scope;
  tenant_id?: string;
}

export class AuthError extends Error {
  constructor(
    readonly status: 401 | 403,
    message: string,
  ) {
    super(message);
  }
}

const ALGORITHMS = ['EdDSA', 'RS256'];

export function loadPublicKey(path: string): KeyObject {
  try {
    return createPublicKey(readFileSync(path));
  } catch (err) {
    throw new Error(`cannot load JWT public key ${path}: ${(err as Error).message}`);
  }
}

export class Authenticator {
  constructor(private readonly key: KeyObject) {}

  /** Verifies signature, `exp` and the claim shape; throws AuthError(401) naming what failed. */
  async verify(token: string | undefined): Promise<Claims> {
    if (!token) throw new AuthError(401, 'authentication required: missing JWT');
    let payload: Record<string, unknown>;
    try {
      ({ payload } = await jwtVerify(token, this.key, { algorithms: ALGORITHMS }));
    } catch (err) {
      if (err instanceof joseErrors.JWTExpired) throw new AuthError(401, 'JWT has expired');
      throw new AuthError(401, `invalid JWT: ${(err as Error).message}`);
    }
    const { scope, tenant_id } = payload;
    if (scope === 'admin') return { scope };
    if (scope === 'tenant' && typeof tenant_id === 'string' && /^[0-9a-f]{32}$/.test(tenant_id)) return { scope, tenant_id };
    throw new AuthError(401, 'invalid JWT: scope must be "admin", or "tenant" with a 32-hex tenant_id');
  }
}

/** Admin reaches everything; a tenant token reaches only requests about its own tenant. */
export function authorize(claims: Claims, tenantId: string | undefined): void {
  if (claims.scope === 'admin') return;
  if (tenantId === undefined) throw new AuthError(403, 'permission denied: this operation needs an admin token');
  if (claims.tenant_id !== tenantId) throw new AuthError(403, 'permission denied: token is not valid for this tenant');
}

/** Issues a token (walctl and tests); the algorithm follows the private key's type. */
export async function signToken(privateKeyPem: string | Buffer, claims: Claims, expiresIn?: string): Promise<string> {
  const key = createPrivateKey(privateKeyPem);
  const alg = key.asymmetricKeyType === 'ed25519' ? 'EdDSA' : 'RS256';
  let jwt = new SignJWT({ ...claims }).setProtectedHeader({ alg }).setIssuedAt();
  if (expiresIn) jwt = jwt.setExpirationTime(expiresIn);
  return jwt.sign(key);
}
