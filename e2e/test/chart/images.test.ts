// The container images, checked without a Docker engine: what each Dockerfile copies exists (in the
// build context, or as output of the build stage), the entrypoints resolve to built files, the
// runtime has every npm package the entry point imports, the base image is pinned and the user is
// not root.
import fs from 'node:fs';
import path from 'node:path';
import { finalStage, parseDockerIgnore, readDockerfile, stage, type Dockerfile, type Stage } from '../../src/chart/dockerfile.js';
import { ROOT } from '../../src/chart/helm.js';
import { readWorkspaces, walkImports, type Workspace } from '../../src/chart/imports.js';
import { operatorModule, type OperatorSafekeeperSpecModule } from './operator-source.js';

const ignore = parseDockerIgnore(fs.readFileSync(path.join(ROOT, '.dockerignore'), 'utf8'));
const workspaces = readWorkspaces(ROOT);
const wsByDir = (dir: string) => workspaces.find((w) => path.relative(ROOT, w.dir) === dir)!;

interface ImageSpec {
  file: string;
  workspace: string; // the workspace whose prod dependencies the image installs
  command: string; // the ENTRYPOINT, a bin of that workspace
  launcher: string; // repository path of the bin file
  entry: string; // the built file the launcher imports
  extraCommands: string[]; // other commands on PATH
}

const images: ImageSpec[] = [
  { file: 'Dockerfile.dataplane', workspace: 'dataplane', command: 'walkeeper', launcher: 'dataplane/bin/walkeeper.js', entry: 'dataplane/dist/src/cli/walkeeper.js', extraCommands: ['walctl'] },
  { file: 'Dockerfile.operator', workspace: 'operator', command: 'walkeeper-operator', launcher: 'operator/bin/walkeeper-operator.js', entry: 'operator/dist/src/main.js', extraCommands: [] },
];

/** A path inside the build stage (under its WORKDIR) as a repository path. */
function repoPathIn(s: Stage, abs: string): string {
  const rel = path.posix.relative(s.workdir, path.posix.resolve(s.workdir, abs));
  if (rel.startsWith('..')) throw new Error(`${abs} is outside ${s.name}'s WORKDIR ${s.workdir}`);
  return rel;
}

/** Where each runtime path came from: container path → repository path (build outputs and context files). */
function runtimeFiles(df: Dockerfile): Map<string, string> {
  const rt = finalStage(df);
  const out = new Map<string, string>();
  for (const c of rt.copies) {
    for (const src of c.sources) {
      const destBase = path.posix.resolve(rt.workdir, c.dest);
      const dest = c.dest.endsWith('/') ? path.posix.join(destBase, path.posix.basename(src)) : destBase;
      if (c.from === 'build') out.set(dest, repoPathIn(stage(df, 'build'), src));
      else if (c.from === undefined) out.set(dest, src);
    }
  }
  return out;
}

/** The repository path of a runtime container path, if the image holds it (by a copied directory or file). */
function repoPathOf(map: Map<string, string>, containerPath: string): string | undefined {
  for (const [dest, src] of map) {
    if (containerPath === dest) return src;
    if (containerPath.startsWith(dest + '/')) return path.posix.join(src, containerPath.slice(dest.length + 1));
  }
  return undefined;
}

beforeAll(() => {
  for (const img of images) {
    if (!fs.existsSync(path.join(ROOT, img.entry))) {
      throw new Error(`${img.entry} is missing: run \`npm run build\` before the image tests (they check the build output).`);
    }
  }
});

describe.each(images)('$file', (img) => {
  const df = readDockerfile(path.join(ROOT, img.file));
  const ws: Workspace = wsByDir(img.workspace);

  test('base images are pinned tags (never latest), stages name each other', () => {
    expect(Object.keys(df.globalArgs)).toContain('NODE_IMAGE');
    for (const s of df.stages) {
      if (s.fromStage) continue;
      // repository:tag with a version number in the tag, optionally @sha256:digest.
      expect(s.image).toMatch(/^[a-z0-9./-]+:\d+\.\d+(\.\d+)?[-\w.]*(@sha256:[0-9a-f]{64})?$/);
      expect(s.image).not.toMatch(/:latest\b/);
    }
    expect(df.stages.map((s) => s.name)).toEqual(['build', 'deps', 'runtime']);
    // One base for all stages, so the prod node_modules match the runtime's node and libc.
    expect(new Set(df.stages.map((s) => s.image)).size).toBe(1);
  });

  test('every COPY from the build context exists and is not excluded by .dockerignore', () => {
    for (const s of df.stages) {
      for (const c of s.copies.filter((x) => x.from === undefined)) {
        for (const src of c.sources) {
          expect({ src, line: c.line, exists: fs.existsSync(path.join(ROOT, src)) }).toEqual({ src, line: c.line, exists: true });
          expect({ src, excluded: ignore.excluded(src) }).toEqual({ src, excluded: false });
        }
      }
    }
  });

  test('the build stage installs everything and compiles the product projects alone; every COPY --from=build exists after the build', () => {
    const build = stage(df, 'build');
    expect(build.runs.some((r) => /^npm ci\b/.test(r) && !/--omit=dev/.test(r))).toBe(true);
    // `tsc -b` of the image's workspace (and the product workspaces it imports): never the
    // testkit, e2e or the data plane's test project, so no test tool reaches the image.
    const tsc = build.runs.find((r) => /^npx tsc -b\b/.test(r));
    expect(tsc).toBeDefined();
    const projects = tsc!.split(/\s+/).slice(3);
    expect(projects).toContain(img.workspace);
    for (const p of projects) {
      expect({ p, product: ['dataplane', 'operator'].includes(p) }).toEqual({ p, product: true });
      expect(build.copies.flatMap((c) => c.sources)).toContain(`${p}/`);
    }
    const includes = (JSON.parse(fs.readFileSync(path.join(ROOT, 'dataplane', 'tsconfig.json'), 'utf8')) as { include: string[] }).include;
    expect(includes).toEqual(['src/**/*.ts']);
    // npm ci needs every workspace manifest next to the lockfile.
    const manifests = build.copies.flatMap((c) => c.sources).filter((s) => s.endsWith('package.json'));
    for (const w of workspaces) expect(manifests).toContain(path.relative(ROOT, path.join(w.dir, 'package.json')));
    expect(build.copies.flatMap((c) => c.sources)).toContain('package-lock.json');
    for (const s of df.stages) {
      for (const c of s.copies.filter((x) => x.from === 'build')) {
        for (const src of c.sources) {
          const rel = repoPathIn(build, src);
          expect({ src: rel, exists: fs.existsSync(path.join(ROOT, rel)) }).toEqual({ src: rel, exists: true });
          // Either sent in the context, or produced by the build (dist/ is never sent).
          if (ignore.excluded(rel)) expect(rel).toMatch(/(^|\/)dist(\/|$)/);
        }
      }
    }
  });

  test('runtime node_modules are production dependencies of this workspace only', () => {
    const deps = stage(df, 'deps');
    const ci = deps.runs.find((r) => /^npm ci\b/.test(r));
    expect(ci).toMatch(/--omit=dev/);
    expect(ci).toMatch(new RegExp(`--workspace[= ]${img.workspace}\\b`));
    const manifests = deps.copies.flatMap((c) => c.sources).filter((s) => s.endsWith('package.json'));
    for (const w of workspaces) expect(manifests).toContain(path.relative(ROOT, path.join(w.dir, 'package.json')));
    const rt = finalStage(df);
    const nm = rt.copies.filter((c) => c.sources.some((s) => s.includes('node_modules')));
    expect(nm.map((c) => c.from)).toEqual(['deps']);
    // No source, tests or dev tooling in the runtime: only package files, bin/ and dist/src.
    for (const [, src] of runtimeFiles(df)) {
      expect(src).toMatch(/^(package\.json|[a-z]+\/package\.json|[a-z]+\/bin|[a-z]+\/dist\/src)$/);
    }
  });

  test('entrypoint is the workspace bin, on PATH, resolving to the built entry file', () => {
    const rt = finalStage(df);
    expect(rt.entrypoint).toEqual([img.command]);
    expect(ws.pkg.bin?.[img.command]).toBe(path.relative(img.workspace, img.launcher));
    const files = runtimeFiles(df);
    for (const command of [img.command, ...img.extraCommands]) {
      const link = rt.runs.join('\n').match(new RegExp(`ln -s (\\S+) /usr/local/bin/${command}\\b`));
      expect({ command, link: link?.[1] !== undefined }).toEqual({ command, link: true });
      const repoPath = repoPathOf(files, link![1]!);
      expect({ command, repoPath }).toEqual({ command, repoPath: path.join(img.workspace, ws.pkg.bin![command]!) });
      expect(fs.statSync(path.join(ROOT, repoPath!)).mode & 0o100).toBeTruthy(); // executable in git
    }
    // The launcher imports the built entry, which the image contains.
    const launcher = fs.readFileSync(path.join(ROOT, img.launcher), 'utf8');
    const target = /import\s+['"]([^'"]+)['"]/.exec(launcher)?.[1];
    expect(path.join(path.dirname(img.launcher), target ?? '')).toBe(img.entry);
    expect(fs.existsSync(path.join(ROOT, img.entry))).toBe(true);
  });

  test('every file the entry point imports is in the image, every npm package it imports is a production dependency', () => {
    const g = walkImports(path.join(ROOT, img.launcher), workspaces);
    expect(g.missing).toEqual([]);
    const files = runtimeFiles(df);
    const copied = [...files.values()];
    const notInImage = [...g.files].map((f) => path.relative(ROOT, f)).filter((f) => !copied.some((c) => f === c || f.startsWith(c + '/')));
    expect(notInImage).toEqual([]);
    // Reached workspaces: their package.json must be in the image (ESM "type": "module", exports).
    for (const name of g.workspaces) {
      const dir = path.relative(ROOT, workspaces.find((w) => w.name === name)!.dir);
      expect(copied).toContain(`${dir}/package.json`);
    }
    // npm ci --omit=dev --workspace X installs X's dependencies and those of the workspaces it depends on.
    const installed = new Set<string>();
    const addDeps = (w: Workspace) => {
      for (const dep of Object.keys(w.pkg.dependencies ?? {})) {
        installed.add(dep);
        const inner = workspaces.find((x) => x.name === dep);
        if (inner && inner !== w) addDeps(inner);
      }
    };
    addDeps(ws);
    const undeclared = [...g.packages].filter(([p]) => !installed.has(p)).map(([p, from]) => `${p} (imported by ${path.relative(ROOT, from)})`);
    expect(undeclared).toEqual([]);
  });

  test('runs as a non-root numeric user', () => {
    const rt = finalStage(df);
    expect(rt.user).toBeDefined();
    const [uid, gid] = rt.user!.split(':');
    expect(uid).toMatch(/^\d+$/); // numeric, so runAsNonRoot can verify it
    expect(Number(uid)).toBeGreaterThan(0);
    if (gid !== undefined) expect(Number(gid)).toBeGreaterThan(0);
    // USER is the last word on identity: nothing after it switches back.
    const lastUser = rt.instructions.filter((i) => i.cmd === 'USER').pop()!;
    expect(lastUser.args).toBe(rt.user);
  });
});

test('the data-plane image runs as the UID the operator gives safekeeper pods', async () => {
  const { SAFEKEEPER_UID } = await operatorModule<OperatorSafekeeperSpecModule>('specs/safekeeper.ts');
  const rt = finalStage(readDockerfile(path.join(ROOT, 'Dockerfile.dataplane')));
  expect(rt.user).toBe(`${SAFEKEEPER_UID}:${SAFEKEEPER_UID}`);
});

test('.dockerignore keeps build output, dependencies, tests and the chart out of the context', () => {
  for (const p of ['node_modules', 'dataplane/node_modules/x', 'dataplane/dist/src/cli/walkeeper.js', 'e2e/test/chart/images.test.ts', '.git', 'helm/walkeeper/Chart.yaml', '.tools/bin/helm']) {
    expect({ p, excluded: ignore.excluded(p) }).toEqual({ p, excluded: true });
  }
  for (const p of ['package.json', 'package-lock.json', 'tsconfig.base.json', 'dataplane/src/cli/walkeeper.ts', 'dataplane/bin/walkeeper.js', 'operator/tsconfig.json']) {
    expect({ p, excluded: ignore.excluded(p) }).toEqual({ p, excluded: false });
  }
});
