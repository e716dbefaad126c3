// Bundle the CLI into dist/ (one file per lazily loaded command): fewer module loads, faster start-up.
import { build } from 'esbuild';

await build({
  entryPoints: ['src/cli/main.ts'],
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  // Prefer ES modules: jsonc-parser's "main" is a UMD build that esbuild cannot follow.
  mainFields: ['module', 'main'],
  outdir: 'dist',
  chunkNames: 'chunks/[name]-[hash]',
  minifyWhitespace: true,
  minifySyntax: true,
  sourcemap: 'linked',
  logLevel: 'warning',
  // CommonJS dependencies (commander) call require() on node builtins.
  banner: { js: "import { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);" },
});
