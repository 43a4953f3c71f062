// Product files stay small enough to read in one sitting: one over 400 lines says at its top
// why it stays whole ("(Over 400 lines: ...)"), so a file that grows past the bound is a
// decision someone wrote down, not an accident.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const PRODUCT_DIRS = ['dataplane/src', 'operator/src'];
const MAX_LINES = 400;
const REASON = /^\/\/.*\(Over 400 lines: \S/m;

function tsFiles(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { withFileTypes: true }).flatMap((d) =>
    d.isDirectory() ? tsFiles(join(dir, d.name)) : d.name.endsWith('.ts') ? [join(dir, d.name)] : [],
  );
}

/** The leading comment block of a file (where its reason must be). */
function header(text: string): string {
  const lines = text.split('\n');
  const end = lines.findIndex((l) => !l.startsWith('//') && l.trim() !== '');
  return lines.slice(0, end < 0 ? lines.length : end).join('\n');
}

test('every product file over 400 lines names its reason at its top', () => {
  const files = PRODUCT_DIRS.flatMap(tsFiles);
  expect(files.length).toBeGreaterThan(50);
  const unexplained = files
    .map((f) => ({ f, text: readFileSync(join(ROOT, f), 'utf8') }))
    .filter(({ text }) => text.split('\n').length > MAX_LINES && !REASON.test(header(text)))
    .map(({ f, text }) => `${f} (${text.split('\n').length} lines)`);
  expect(unexplained).toEqual([]);
});

test('the check sees a reason only in the leading comment', () => {
  expect(REASON.test(header('// a module\n// (Over 400 lines: one machine.)\nimport x from "y";\n'))).toBe(true);
  expect(REASON.test(header('// a module\nimport x from "y";\n// (Over 400 lines: too late.)\n'))).toBe(false);
});
