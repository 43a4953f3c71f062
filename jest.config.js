// One jest run over every workspace. TypeScript is stripped by swc (no type-check here;
// `npm run build` is the type-check), and tests run as native ESM.
const swc = ['@swc/jest', { jsc: { target: 'es2022', parser: { syntax: 'typescript' } }, module: { type: 'es6' } }];
export default {
  testEnvironment: 'node',
  extensionsToTreatAsEsm: ['.ts'],
  transform: { '^.+\\.ts$': swc },
  // The operator's door to the data plane's wire types resolves to source, so its tests need no build.
  moduleNameMapper: { '^(\\.{1,2}/.*)\\.js$': '$1', '^@walkeeper/dataplane/api$': '<rootDir>/dataplane/src/api/index.ts' },
  testMatch: ['<rootDir>/{dataplane,operator,e2e,testkit}/test/**/*.test.ts'],
  testTimeout: 120000,
};
