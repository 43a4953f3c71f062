// A small Dockerfile and .dockerignore reader, enough to check the images without a Docker engine:
// stages, COPY sources, the final USER and ENTRYPOINT, and which context paths are sent.
import fs from 'node:fs';
import path from 'node:path';

export interface Instruction {
  cmd: string; // upper case: FROM, COPY, RUN, ...
  args: string; // the rest of the (joined) line
  line: number;
}

export interface Copy {
  from?: string;
  sources: string[];
  dest: string;
  line: number;
}

export interface Stage {
  name?: string;
  index: number;
  /** FROM's image after substituting global ARG defaults. */
  image: string;
  /** A previous stage this one starts from, if any. */
  fromStage?: string;
  workdir: string;
  instructions: Instruction[];
  copies: Copy[];
  runs: string[];
  user?: string;
  entrypoint?: string[];
  cmd?: string[];
}

export interface Dockerfile {
  globalArgs: Record<string, string>;
  stages: Stage[];
}

/** Joins continuation lines and drops comments and blank lines. */
export function instructions(text: string): Instruction[] {
  const out: Instruction[] = [];
  const lines = text.split('\n');
  let buf = '';
  let start = 0;
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!;
    const trimmed = raw.trim();
    if (buf === '' && (trimmed === '' || trimmed.startsWith('#'))) continue;
    if (buf !== '' && trimmed.startsWith('#')) continue; // comment inside a continued instruction
    if (buf === '') start = i + 1;
    if (trimmed.endsWith('\\')) {
      buf += trimmed.slice(0, -1) + ' ';
      continue;
    }
    buf += trimmed;
    const m = /^(\S+)\s*(.*)$/s.exec(buf)!;
    out.push({ cmd: m[1]!.toUpperCase(), args: m[2]!.trim(), line: start });
    buf = '';
  }
  return out;
}

function substitute(s: string, vars: Record<string, string>): string {
  return s.replace(/\$\{(\w+)\}|\$(\w+)/g, (_, a: string | undefined, b: string | undefined) => vars[(a ?? b)!] ?? '');
}

function execForm(args: string): string[] | undefined {
  if (!args.startsWith('[')) return undefined;
  return JSON.parse(args) as string[];
}

export function parseDockerfile(text: string): Dockerfile {
  const globalArgs: Record<string, string> = {};
  const stages: Stage[] = [];
  let cur: Stage | undefined;
  for (const ins of instructions(text)) {
    if (ins.cmd === 'ARG' && !cur) {
      const [k, ...v] = ins.args.split('=');
      globalArgs[k!.trim()] = v.join('=').trim();
      continue;
    }
    if (ins.cmd === 'FROM') {
      const m = /^(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?$/i.exec(ins.args);
      if (!m) throw new Error(`line ${ins.line}: cannot parse FROM ${ins.args}`);
      const image = substitute(m[1]!, globalArgs);
      const fromStage = stages.find((s) => s.name === image)?.name;
      cur = { name: m[2], index: stages.length, image, fromStage, workdir: fromStage ? stages.find((s) => s.name === fromStage)!.workdir : '/', instructions: [], copies: [], runs: [] };
      stages.push(cur);
      continue;
    }
    if (!cur) throw new Error(`line ${ins.line}: ${ins.cmd} before FROM`);
    cur.instructions.push(ins);
    switch (ins.cmd) {
      case 'WORKDIR':
        cur.workdir = path.posix.resolve(cur.workdir, ins.args);
        break;
      case 'RUN':
        cur.runs.push(ins.args);
        break;
      case 'USER':
        cur.user = ins.args;
        break;
      case 'ENTRYPOINT':
        cur.entrypoint = execForm(ins.args) ?? ['/bin/sh', '-c', ins.args];
        break;
      case 'CMD':
        cur.cmd = execForm(ins.args) ?? ['/bin/sh', '-c', ins.args];
        break;
      case 'COPY':
      case 'ADD': {
        const words = execForm(ins.args) ?? ins.args.split(/\s+/);
        let from: string | undefined;
        const rest: string[] = [];
        for (const w of words) {
          if (w.startsWith('--from=')) from = w.slice('--from='.length);
          else if (!w.startsWith('--')) rest.push(w);
        }
        if (rest.length < 2) throw new Error(`line ${ins.line}: COPY needs a source and a destination`);
        cur.copies.push({ from, sources: rest.slice(0, -1), dest: rest[rest.length - 1]!, line: ins.line });
        break;
      }
    }
  }
  return { globalArgs, stages };
}

export function readDockerfile(file: string): Dockerfile {
  return parseDockerfile(fs.readFileSync(file, 'utf8'));
}

export function stage(df: Dockerfile, name: string): Stage {
  const s = df.stages.find((x) => x.name === name);
  if (!s) throw new Error(`no stage ${name}`);
  return s;
}

export function finalStage(df: Dockerfile): Stage {
  return df.stages[df.stages.length - 1]!;
}

// ---- .dockerignore ------------------------------------------------------------------------------

function globToRegExp(pattern: string): RegExp {
  let re = '';
  const p = pattern.replace(/^\/+/, '').replace(/\/+$/, '');
  for (let i = 0; i < p.length; i++) {
    const c = p[i]!;
    if (c === '*' && p[i + 1] === '*') {
      // `**/` matches any number of directories (including none); a trailing `**` anything.
      if (p[i + 2] === '/') {
        re += '(?:.*/)?';
        i += 2;
      } else {
        re += '.*';
        i += 1;
      }
    } else if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else re += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

export interface DockerIgnore {
  /** True when the context path (relative, posix) is not sent to the builder. */
  excluded(rel: string): boolean;
}

/** Docker's rules: patterns in order, the last match wins, `!` re-includes; a path is excluded with its parent. */
export function parseDockerIgnore(text: string): DockerIgnore {
  const rules = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map((l) => (l.startsWith('!') ? { negate: true, re: globToRegExp(l.slice(1)) } : { negate: false, re: globToRegExp(l) }));
  const matchOne = (p: string): boolean | undefined => {
    let result: boolean | undefined;
    for (const r of rules) if (r.re.test(p)) result = !r.negate;
    return result;
  };
  return {
    excluded(rel) {
      const parts = path.posix.normalize(rel).replace(/^\.\//, '').split('/');
      let excluded = false;
      for (let i = 1; i <= parts.length; i++) {
        const m = matchOne(parts.slice(0, i).join('/'));
        if (m !== undefined) excluded = m;
      }
      return excluded;
    },
  };
}
