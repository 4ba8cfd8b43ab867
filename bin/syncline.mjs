#!/usr/bin/env node
// The `syncline` command. The TypeScript sources run directly on Node 24 (type stripping).
import { main } from '../runner/cli/index.ts';

process.exitCode = await main(process.argv);
