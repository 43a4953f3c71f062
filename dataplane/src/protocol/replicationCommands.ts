// Parser of the commands a replication connection sends as simple queries (IDENTIFY_SYSTEM,
// START_REPLICATION, ...), as tolerant as PostgreSQL's replication grammar: keywords in any
// case, free whitespace, an optional trailing semicolon, quoted or unquoted identifiers.
import type { Lsn } from '../common/lsn.js';
import { ProtocolError, SqlState } from './errors.js';

export type ReplicationCommand =
  | { kind: 'empty' }
  | { kind: 'identify_system' }
  | { kind: 'show'; name: string }
  | { kind: 'timeline_history'; timeline: number }
  | { kind: 'read_replication_slot'; slot: string }
  | {
      kind: 'start_replication';
      slot: string | null;
      /** whether the PHYSICAL keyword was present (stock clients omit it) */
      physicalKeyword: boolean;
      startLsn: Lsn;
      timeline: number | null;
      /** walkeeper/Neon extension `(term 'N')`: stream up to flush LSN while this term is current */
      term: bigint | null;
    }
  | { kind: 'start_wal_push'; options: Record<string, string> }
  | { kind: 'timeline_status' }
  | {
      kind: 'create_replication_slot';
      slot: string;
      temporary: boolean;
      slotType: 'physical' | 'logical';
      /** output plugin of a logical slot */
      plugin: string | null;
      /** options in parentheses and legacy keywords (RESERVE_WAL, EXPORT_SNAPSHOT...), keys lower case */
      options: Record<string, string>;
    }
  | { kind: 'drop_replication_slot'; slot: string; wait: boolean }
  | { kind: 'set'; name: string; value: string }
  /** understood but not served; answer an error with `sqlState` and `message` */
  | { kind: 'unsupported'; command: string; sqlState: string; message: string }
  /** not a replication command; answer a syntax error naming `text` */
  | { kind: 'unknown'; text: string };

type Token =
  | { t: 'word'; v: string; raw: string } // unquoted identifier or keyword, lower-cased in v
  | { t: 'quoted'; v: string; raw: string } // "double quoted" identifier
  | { t: 'string'; v: string; raw: string } // 'single quoted' literal
  | { t: 'number'; v: string; raw: string }
  | { t: 'lsn'; v: string; raw: string }
  | { t: 'punct'; v: string; raw: string };

/** Parses one query of a replication connection. Throws ProtocolError (42601) on bad syntax of a known command. */
export function parseReplicationCommand(text: string): ReplicationCommand {
  const trimmed = text.trim();
  let tokens: Token[];
  try {
    tokens = tokenize(trimmed);
  } catch (err) {
    // an unterminated quote in a command we do not know is still just an unknown command
    const first = /^[A-Za-z_]+/.exec(trimmed)?.[0]?.toUpperCase();
    if (first && KNOWN.has(first)) throw err;
    return { kind: 'unknown', text };
  }
  if (tokens.length > 0 && tokens[tokens.length - 1].t === 'punct' && tokens[tokens.length - 1].v === ';') tokens.pop();
  if (tokens.length === 0) return { kind: 'empty' };
  const head = tokens[0];
  if (head.t !== 'word' || !KNOWN.has(head.v.toUpperCase())) return { kind: 'unknown', text };
  const p = new Parser(tokens, head.v.toUpperCase());
  return p.parse(text);
}

const KNOWN = new Set([
  'IDENTIFY_SYSTEM',
  'SHOW',
  'TIMELINE_HISTORY',
  'READ_REPLICATION_SLOT',
  'START_REPLICATION',
  'START_WAL_PUSH',
  'TIMELINE_STATUS',
  'CREATE_REPLICATION_SLOT',
  'DROP_REPLICATION_SLOT',
  'BASE_BACKUP',
  'SET',
]);

function syntax(command: string, why: string): ProtocolError {
  return new ProtocolError(`syntax error in ${command}: ${why}`, SqlState.syntaxError);
}

function tokenize(s: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  while (i < s.length) {
    const c = s[i];
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    if (c === '"' || c === "'") {
      let v = '';
      let j = i + 1;
      for (;;) {
        if (j >= s.length) throw new ProtocolError(`unterminated quoted ${c === '"' ? 'identifier' : 'string'} at: ${s.slice(i, i + 40)}`, SqlState.syntaxError);
        if (s[j] === c) {
          if (s[j + 1] === c) {
            v += c;
            j += 2;
            continue;
          }
          break;
        }
        v += s[j++];
      }
      out.push({ t: c === '"' ? 'quoted' : 'string', v, raw: s.slice(i, j + 1) });
      i = j + 1;
      continue;
    }
    if ('(),;='.includes(c)) {
      out.push({ t: 'punct', v: c, raw: c });
      i++;
      continue;
    }
    // a bare run: identifier, number, LSN, or junk; up to whitespace or punctuation
    let j = i;
    while (j < s.length && !/\s/.test(s[j]) && !'(),;="\''.includes(s[j])) j++;
    const raw = s.slice(i, j);
    if (raw.includes('/')) out.push({ t: 'lsn', v: raw, raw });
    else if (/^[0-9]+$/.test(raw)) out.push({ t: 'number', v: raw, raw });
    else out.push({ t: 'word', v: raw.toLowerCase(), raw });
    i = j;
  }
  return out;
}

const IDENT = /^[a-z_][a-z0-9_$]*$/;

class Parser {
  private pos = 1;

  constructor(
    private readonly tokens: Token[],
    private readonly command: string,
  ) {}

  private peek(): Token | undefined {
    return this.tokens[this.pos];
  }

  private next(what: string): Token {
    const tok = this.tokens[this.pos++];
    if (!tok) throw syntax(this.command, `expected ${what} at end of command`);
    return tok;
  }

  private keyword(kw: string): boolean {
    const tok = this.peek();
    if (tok && tok.t === 'word' && tok.v === kw.toLowerCase()) {
      this.pos++;
      return true;
    }
    return false;
  }

  private punct(p: string): boolean {
    const tok = this.peek();
    if (tok && tok.t === 'punct' && tok.v === p) {
      this.pos++;
      return true;
    }
    return false;
  }

  private end(): void {
    const tok = this.peek();
    if (tok) throw syntax(this.command, `unexpected "${tok.raw}"`);
  }

  /** a slot or variable name: a quoted identifier verbatim, an unquoted one lower-cased */
  private identifier(what: string, allowDots = false): string {
    const tok = this.next(what);
    if (tok.t === 'quoted') {
      if (tok.v.length === 0) throw syntax(this.command, `zero-length ${what}`);
      return tok.v;
    }
    if (tok.t === 'word') {
      const parts = allowDots ? tok.v.split('.') : [tok.v];
      if (parts.every((p) => IDENT.test(p))) return tok.v;
    }
    throw syntax(this.command, `invalid ${what} "${tok.raw}"`);
  }

  private lsn(): Lsn {
    const tok = this.next('a start LSN (X/X)');
    const m = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/.exec(tok.raw);
    if (tok.t !== 'lsn' || !m) throw syntax(this.command, `invalid LSN "${tok.raw}": expected X/X with up to 8 hex digits on each side`);
    return (BigInt('0x' + m[1]) << 32n) | BigInt('0x' + m[2]);
  }

  private timeline(): number {
    const tok = this.next('a timeline number');
    if (tok.t !== 'number' || tok.v.length > 10 || Number(tok.v) <= 0 || Number(tok.v) > 0xffffffff) {
      throw syntax(this.command, `invalid timeline "${tok.raw}": expected an integer between 1 and 4294967295`);
    }
    return Number(tok.v);
  }

  /** `( name [=] [value] [, ...] )` with names lower-cased; a missing value is '' */
  private optionList(): Record<string, string> {
    const opts: Record<string, string> = Object.create(null) as Record<string, string>;
    if (!this.punct('(')) return opts;
    if (this.punct(')')) return opts;
    for (;;) {
      const nameTok = this.next('an option name');
      if (nameTok.t !== 'word' && nameTok.t !== 'quoted') throw syntax(this.command, `invalid option name "${nameTok.raw}"`);
      const name = nameTok.v.toLowerCase();
      this.punct('=');
      let value = '';
      const tok = this.peek();
      if (tok && !(tok.t === 'punct' && (tok.v === ',' || tok.v === ')'))) {
        if (tok.t === 'punct') throw syntax(this.command, `unexpected "${tok.raw}" in options`);
        this.pos++;
        value = tok.t === 'word' ? tok.raw : tok.v;
      }
      opts[name] = value;
      if (this.punct(')')) return opts;
      if (!this.punct(',')) {
        const bad = this.peek();
        throw syntax(this.command, bad ? `expected "," or ")" in options, got "${bad.raw}"` : 'unterminated option list');
      }
    }
  }

  parse(text: string): ReplicationCommand {
    switch (this.command) {
      case 'IDENTIFY_SYSTEM':
        this.end();
        return { kind: 'identify_system' };
      case 'TIMELINE_STATUS':
        this.end();
        return { kind: 'timeline_status' };
      case 'SHOW': {
        const name = this.identifier('parameter name', true);
        this.end();
        return { kind: 'show', name };
      }
      case 'TIMELINE_HISTORY': {
        const timeline = this.timeline();
        this.end();
        return { kind: 'timeline_history', timeline };
      }
      case 'READ_REPLICATION_SLOT': {
        const slot = this.identifier('slot name');
        this.end();
        return { kind: 'read_replication_slot', slot };
      }
      case 'START_REPLICATION':
        return this.startReplication();
      case 'START_WAL_PUSH': {
        const options = this.optionList();
        this.end();
        return { kind: 'start_wal_push', options };
      }
      case 'CREATE_REPLICATION_SLOT':
        return this.createSlot();
      case 'DROP_REPLICATION_SLOT': {
        const slot = this.identifier('slot name');
        const wait = this.keyword('WAIT');
        this.end();
        return { kind: 'drop_replication_slot', slot, wait };
      }
      case 'BASE_BACKUP':
        return {
          kind: 'unsupported',
          command: 'BASE_BACKUP',
          sqlState: SqlState.featureNotSupported,
          message: 'BASE_BACKUP is not supported by a safekeeper: it holds WAL only; take base backups from the primary',
        };
      case 'SET':
        return this.set(text);
      default:
        return { kind: 'unknown', text };
    }
  }

  private startReplication(): ReplicationCommand {
    let slot: string | null = null;
    if (this.keyword('SLOT')) slot = this.identifier('slot name');
    if (this.keyword('LOGICAL')) {
      return {
        kind: 'unsupported',
        command: 'START_REPLICATION LOGICAL',
        sqlState: SqlState.featureNotSupported,
        message: 'logical replication is not supported by a safekeeper: only physical replication (START_REPLICATION [SLOT s] [PHYSICAL] X/X) is served',
      };
    }
    const physicalKeyword = this.keyword('PHYSICAL');
    const startLsn = this.lsn();
    let timeline: number | null = null;
    if (this.keyword('TIMELINE')) timeline = this.timeline();
    let term: bigint | null = null;
    const opts = this.optionList();
    for (const [name, value] of Object.entries(opts)) {
      if (name !== 'term') throw syntax(this.command, `unrecognized option "${name}"`);
      if (!/^[0-9]{1,20}$/.test(value) || BigInt(value) > 0xffffffffffffffffn) {
        throw syntax(this.command, `invalid term "${value}": expected an unsigned 64-bit integer`);
      }
      term = BigInt(value);
    }
    this.end();
    return { kind: 'start_replication', slot, physicalKeyword, startLsn, timeline, term };
  }

  private createSlot(): ReplicationCommand {
    const slot = this.identifier('slot name');
    const temporary = this.keyword('TEMPORARY');
    let slotType: 'physical' | 'logical';
    let plugin: string | null = null;
    if (this.keyword('PHYSICAL')) slotType = 'physical';
    else if (this.keyword('LOGICAL')) {
      slotType = 'logical';
      plugin = this.identifier('output plugin name');
    } else {
      const tok = this.peek();
      throw syntax(this.command, tok ? `expected PHYSICAL or LOGICAL, got "${tok.raw}"` : 'expected PHYSICAL or LOGICAL');
    }
    const options = this.optionList();
    // legacy (pre-15) keyword options
    for (;;) {
      const tok = this.peek();
      if (!tok || tok.t !== 'word') break;
      if (['reserve_wal', 'export_snapshot', 'noexport_snapshot', 'use_snapshot', 'two_phase'].includes(tok.v)) {
        options[tok.v] = 'true';
        this.pos++;
      } else break;
    }
    this.end();
    return { kind: 'create_replication_slot', slot, temporary, slotType, plugin, options };
  }

  /** `SET name TO|= value` as psycopg2 sends it; the value is kept as written */
  private set(text: string): ReplicationCommand {
    const nameTok = this.peek();
    if (!nameTok || (nameTok.t !== 'word' && nameTok.t !== 'quoted')) return { kind: 'unknown', text };
    this.pos++;
    if (!this.keyword('TO') && !this.punct('=')) return { kind: 'unknown', text };
    const values: string[] = [];
    for (let tok = this.peek(); tok; tok = this.peek()) {
      this.pos++;
      if (tok.t === 'punct' && tok.v === ',') continue;
      values.push(tok.t === 'word' ? tok.raw : tok.v);
    }
    if (values.length === 0) throw syntax('SET', `missing value for "${nameTok.v}"`);
    return { kind: 'set', name: nameTok.t === 'word' ? nameTok.v : nameTok.v, value: values.join(', ') };
  }
}
