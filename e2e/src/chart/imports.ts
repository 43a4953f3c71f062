// Walks the static and literal dynamic imports of built ESM files (dist/**.js) from an entry point:
// which files an image must contain and which npm packages it must have installed.
import { builtinModules } from 'node:module';
import fs from 'node:fs';
import path from 'node:path';

const IMPORT_RE = /(?:^|[;\s}])(?:import|export)\s*(?:[^'"`;]*?\sfrom\s*)?['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g;

export function importSpecifiers(source: string): string[] {
  const noComments = source.replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '');
  return [...noComments.matchAll(IMPORT_RE)].map((m) => (m[1] ?? m[2])!);
}

export function packageName(spec: string): string {
  const parts = spec.split('/');
  return spec.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0]!;
}

const builtins = new Set(builtinModules);
export const isBuiltin = (spec: string) => spec.startsWith('node:') || builtins.has(packageName(spec));

export interface Workspace {
  name: string;
  dir: string; // absolute
  pkg: { name: string; dependencies?: Record<string, string>; exports?: Record<string, string>; bin?: Record<string, string> };
}

export function readWorkspaces(root: string): Workspace[] {
  const rootPkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as { workspaces: string[] };
  return rootPkg.workspaces.map((w) => {
    const dir = path.join(root, w);
    const pkg = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')) as Workspace['pkg'];
    return { name: pkg.name, dir, pkg };
  });
}

/** Resolves `@scope/pkg/sub` through a workspace's package.json "exports" (exact keys and one `*`). */
function resolveExport(ws: Workspace, spec: string): string {
  const sub = '.' + spec.slice(ws.name.length);
  const exp = ws.pkg.exports ?? {};
  if (exp[sub]) return path.join(ws.dir, exp[sub]!);
  for (const [k, v] of Object.entries(exp)) {
    const star = k.indexOf('*');
    if (star < 0) continue;
    const pre = k.slice(0, star);
    const post = k.slice(star + 1);
    if (sub.startsWith(pre) && sub.endsWith(post) && sub.length >= pre.length + post.length) {
      return path.join(ws.dir, v.replace('*', sub.slice(pre.length, sub.length - post.length)));
    }
  }
  throw new Error(`${spec}: not exported by ${ws.name}`);
}

export interface ImportGraph {
  /** Every local file reached (absolute paths). */
  files: Set<string>;
  /** npm packages imported, with one importing file each. */
  packages: Map<string, string>;
  /** Workspaces whose files were reached. */
  workspaces: Set<string>;
  /** Imports that did not resolve to a file. */
  missing: string[];
}

export function walkImports(entry: string, workspaces: Workspace[]): ImportGraph {
  const g: ImportGraph = { files: new Set(), packages: new Map(), workspaces: new Set(), missing: [] };
  const todo = [path.resolve(entry)];
  while (todo.length) {
    const file = todo.pop()!;
    if (g.files.has(file)) continue;
    if (!fs.existsSync(file)) {
      g.missing.push(file);
      continue;
    }
    g.files.add(file);
    const ws = workspaces.find((w) => file.startsWith(w.dir + path.sep));
    if (ws) g.workspaces.add(ws.name);
    for (const spec of importSpecifiers(fs.readFileSync(file, 'utf8'))) {
      if (isBuiltin(spec)) continue;
      if (spec.startsWith('.') || spec.startsWith('/')) {
        todo.push(path.resolve(path.dirname(file), spec));
        continue;
      }
      const target = workspaces.find((w) => packageName(spec) === w.name);
      if (target) {
        try {
          todo.push(resolveExport(target, spec));
        } catch (e) {
          g.missing.push(`${file}: ${(e as Error).message}`);
        }
        continue;
      }
      if (!g.packages.has(packageName(spec))) g.packages.set(packageName(spec), file);
    }
  }
  return g;
}
