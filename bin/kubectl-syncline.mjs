#!/usr/bin/env node
// `kubectl syncline ...`: kubectl runs this executable when it is on the PATH as kubectl-syncline.
import { main } from '../plugin/main.ts';

process.exit(await main(process.argv));
