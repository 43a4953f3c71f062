#!/usr/bin/env node
// Thin launcher so npm can link the command before the TypeScript is built.
import { runWalkeeper } from '../dist/src/cli/walkeeper.js';

runWalkeeper(process.argv);
