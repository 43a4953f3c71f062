// `walkeeper` as shipped: the command line with no test hooks (the testkit's
// walkeeper-with-hooks entrypoint calls runWalkeeper with some).
import { runWalkeeper } from './walkeeperCommand.js';

runWalkeeper(process.argv);
