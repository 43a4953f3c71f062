#!/usr/bin/env node
// Thin launcher so npm can link the command before the TypeScript is built.
import '../dist/src/cli/walkeeper.js';
