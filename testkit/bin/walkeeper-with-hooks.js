#!/usr/bin/env node
// `walkeeper` with the test hooks the WALKEEPER_TEST_* variables ask for, so chaos and
// torture can make a real process fail while the product never reads those variables.
import { runWalkeeper } from '@walkeeper/dataplane/cli/walkeeperCommand';
import { hooksFromEnv } from '../dist/src/hooks.js';

let hooks;
try {
  hooks = hooksFromEnv(process.env);
} catch (err) {
  process.stderr.write(`walkeeper-with-hooks: error: ${err.message}\n`);
  process.exit(1);
}
runWalkeeper(process.argv, hooks);
