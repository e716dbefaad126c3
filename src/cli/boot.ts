import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadWithCodeCache } from './code-cache.ts';

// bin/homecloud.cjs runs this bundle: the command line's bundles load from beside it, with V8's code cache.
loadWithCodeCache(dirname(fileURLToPath(import.meta.url)), 'cli.cjs');
