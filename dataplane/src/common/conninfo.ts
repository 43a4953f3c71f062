// libpq connection strings, both forms: `host=h port=5432 user=u` (values may be
// single-quoted) and `postgresql://user:pass@host:port/db?key=value`.

export interface ConnInfo {
  host: string;
  port: number;
  user: string;
  dbname: string;
  password?: string;
  /** any other keys (application_name, options, sslmode, ...) */
  extra: Record<string, string>;
}

export function parseConnInfo(text: string, env: NodeJS.ProcessEnv = process.env): ConnInfo {
  const kv = /^postgres(ql)?:\/\//.test(text) ? parseUrl(text) : parseKeywords(text);
  const { host, port, user, dbname, password, ...extra } = kv;
  const portNum = Number(port ?? env.PGPORT ?? 5432);
  if (!Number.isInteger(portNum) || portNum < 1 || portNum > 65535) throw new Error(`invalid port "${port}" in connection string`);
  return {
    host: host ?? env.PGHOST ?? '127.0.0.1',
    port: portNum,
    user: user ?? env.PGUSER ?? 'postgres',
    dbname: dbname ?? env.PGDATABASE ?? 'postgres',
    password: password ?? env.PGPASSWORD,
    extra,
  };
}

function parseKeywords(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  let i = 0;
  const s = text.trim();
  while (i < s.length) {
    while (s[i] === ' ') i++;
    if (i >= s.length) break;
    const eq = s.indexOf('=', i);
    if (eq < 0) throw new Error(`invalid connection string near "${s.slice(i, i + 20)}": expected key=value`);
    const key = s.slice(i, eq).trim();
    i = eq + 1;
    while (s[i] === ' ') i++;
    let value = '';
    if (s[i] === "'") {
      i++;
      while (i < s.length && s[i] !== "'") {
        if (s[i] === '\\' && i + 1 < s.length) i++;
        value += s[i++];
      }
      if (s[i] !== "'") throw new Error(`invalid connection string: unterminated quote in value of "${key}"`);
      i++;
    } else {
      while (i < s.length && s[i] !== ' ') {
        if (s[i] === '\\' && i + 1 < s.length) i++;
        value += s[i++];
      }
    }
    out[key] = value;
  }
  return out;
}

function parseUrl(text: string): Record<string, string> {
  const url = new URL(text.replace(/^postgres(ql)?:/, 'http:'));
  const out: Record<string, string> = {};
  if (url.hostname) out.host = decodeURIComponent(url.hostname);
  if (url.port) out.port = url.port;
  if (url.username) out.user = decodeURIComponent(url.username);
  if (url.password) out.password = decodeURIComponent(url.password);
  const db = url.pathname.replace(/^\//, '');
  if (db) out.dbname = decodeURIComponent(db);
  for (const [k, v] of url.searchParams) out[k] = v;
  return out;
}
