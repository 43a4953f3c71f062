// One jest run over every workspace. TypeScript is stripped by swc (no type-check here;
// `npm run build` is the type-check), and tests run as native ESM.
const swc = ['@swc/jest', { jsc: { target: 'es2022', parser: { syntax: 'typescript' } }, module: { type: 'es6' } }];
export default {
  testEnvironment: 'node',
  extensionsToTreatAsEsm: ['.ts'],
  transform: { '^.+\\.ts$': swc },
  moduleNameMapper: { '^(\\.{1,2}/.*)\\.js$': '$1' },
  testMatch: ['<rootDir>/{dataplane,operator,e2e,testkit}/test/**/*.test.ts'],
  testTimeout: 120000,
};
