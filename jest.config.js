// One jest run over every workspace. TypeScript is stripped by swc (no type-check here;
// `npm run build` is the type-check), and tests run as native ESM.
const swc = ['@swc/jest', { jsc: { target: 'es2022', parser: { syntax: 'typescript' } }, module: { type: 'es6' } }];
export default {
  testEnvironment: 'node',
  extensionsToTreatAsEsm: ['.ts'],
  transform: { '^.+\\.ts$': swc },
  // The workspaces' package imports run from source too, so a test and the tools it drives
  // share one copy of each module (one class identity, no stale dist).
  moduleNameMapper: {
    '^(\\.{1,2}/.*)\\.js$': '$1',
    '^@walkeeper/dataplane/lsn$': '<rootDir>/dataplane/src/common/lsn',
    '^@walkeeper/dataplane/api$': '<rootDir>/dataplane/src/api/index',
    '^@walkeeper/(dataplane|testkit)/((?!bin/).*)$': '<rootDir>/$1/src/$2',
  },
  testMatch: ['<rootDir>/{dataplane,operator,e2e,testkit}/test/**/*.test.ts'],
  testTimeout: 120000,
};
