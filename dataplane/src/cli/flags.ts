// Every flag of every command can also come from WALKEEPER_<FLAG> (ARCHITECTURE.md §3), so
// one image works from a Kubernetes manifest without a shell wrapper.
import { Option } from 'commander';

export function envName(longFlag: string): string {
  return 'WALKEEPER_' + longFlag.replace(/^--/, '').replace(/-/g, '_').toUpperCase();
}

/** An option `--name <value>` that falls back to $WALKEEPER_NAME, then to the default. */
export function flag(spec: string, description: string, defaultValue?: string): Option {
  const long = /--[a-z0-9-]+/.exec(spec)![0];
  const opt = new Option(spec, description).env(envName(long));
  return defaultValue === undefined ? opt : opt.default(defaultValue);
}

export function parseIntFlag(name: string, value: string, min: number, max: number): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min || n > max) throw new Error(`invalid --${name} "${value}": expected an integer from ${min} to ${max}`);
  return n;
}


export { parseSizeFlag } from '../common/size.js';
