/**
 * Wire shapes both HTTP APIs share: the error body every 4xx/5xx carries (ARCHITECTURE.md §7)
 * and the probe answers.
 */
import type { WireKeys } from './wireKeys.js';

/** Every error answer: a sentence for humans and a stable code for programs. */
export interface ApiErrorJson {
  error: string;
  code: string;
}
export const apiErrorKeys: WireKeys<ApiErrorJson> = { error: 'required', code: 'required' };

/** GET /healthz */
export interface HealthJson {
  status: 'ok';
}
export const healthKeys: WireKeys<HealthJson> = { status: 'required' };

/** GET /readyz when ready (not ready is a 503 ApiErrorJson) */
export interface ReadyJson {
  status: 'ready';
}
export const readyKeys: WireKeys<ReadyJson> = { status: 'required' };
