// Writes crds/*.yaml from the schema source. Run: node operator/dist/src/api/generate-crds.js [outDir]
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { renderCrdFiles } from './render.js';

const here = fileURLToPath(new URL('.', import.meta.url));
// dist/src/api → repository root is four levels up.
const outDir = resolve(process.argv[2] ?? join(here, '..', '..', '..', '..', 'crds'));
mkdirSync(outDir, { recursive: true });
for (const [file, text] of Object.entries(renderCrdFiles())) {
  writeFileSync(join(outDir, file), text);
  console.log(`wrote ${join(outDir, file)}`);
}
