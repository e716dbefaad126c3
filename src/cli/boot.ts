import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadWithCodeCache } from './code-cache.ts';
import { prefetchForArguments } from './early-prefetch.ts';

// A build's sources are signed in native threads from here on, while the rest loads.
prefetchForArguments(process.argv.slice(2));
// bin/homecloud.cjs runs this bundle: the command line's bundles load from beside it, with V8's code cache.
loadWithCodeCache(dirname(fileURLToPath(import.meta.url)), 'cli.cjs');
