// Bundle the CLI into dist/: one CommonJS file per command, loaded only when
// that command runs. CommonJS loads faster than ES modules in Node 20, and
// start-up is paid by every command.
import { copyFileSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { basename, join } from 'node:path';
import { build } from 'esbuild';

rmSync('dist', { recursive: true, force: true });

/** Modules loaded lazily (by dynamic import) become their own bundles. */
const lazy = {
  'src/cli/boot.ts': 'boot',
  'src/cli/entry.ts': 'cli',
  'src/cli/main.ts': 'main',
  'src/cli/commands/build.ts': 'build',
  // Loaded while the native walker signs sources in the background (src/build/prefetch.ts).
  'src/build/builder.ts': 'builder',
  'src/cli/commands/ls.ts': 'ls',
  'src/cli/commands/explain.ts': 'explain',
  'src/load/validate.ts': 'validate',
  'src/cli/commands/sandbox.ts': 'sandbox',
  'src/cli/commands/facts.ts': 'facts',
  'src/cli/commands/exec.ts': 'exec',
  'src/cli/commands/deploy.ts': 'deploy',
  'src/cli/commands/plan.ts': 'plan',
  'src/cli/commands/diff.ts': 'diff',
  'src/cli/commands/clobber.ts': 'clobber',
  'src/cli/commands/watch.ts': 'watch',
  'src/cli/commands/generations.ts': 'generations',
  'src/cli/commands/snapshots.ts': 'snapshots',
  'src/cli/commands/status.ts': 'status',
  'src/cli/commands/check.ts': 'check',
  'src/cli/commands/init.ts': 'init',
};

const separateBundles = {
  name: 'separate-bundles',
  setup(builder) {
    builder.onResolve({ filter: /^\.\.?\/.*\.ts$/ }, (args) => {
      if (args.kind !== 'dynamic-import') return undefined;
      const target = Object.entries(lazy).find(([source]) => new URL(args.path, `file://${args.resolveDir}/`).pathname.endsWith(source));
      return target ? { path: `./${target[1]}.cjs`, external: true } : undefined;
    });
  },
};

/**
 * jsonc-parser's formatter builds 1,200 strings of spaces and tabs when its
 * module loads (string-intern.js), on every command that parses JSON, though
 * homecloud never formats: its formatting modules are declared free of side
 * effects, so that the bundle leaves out what nothing calls.
 */
const unusedJsoncFormatting = {
  name: 'unused-jsonc-formatting',
  setup(builder) {
    builder.onResolve({ filter: /^\.\/impl\/(?:format|edit)$|^\.\/string-intern$/ }, async (args) => {
      if (args.pluginData?.jsonc || !args.importer.includes('/node_modules/jsonc-parser/')) return undefined;
      const resolved = await builder.resolve(args.path, { kind: args.kind, resolveDir: args.resolveDir, pluginData: { jsonc: true } });
      return { ...resolved, sideEffects: false };
    });
  },
};

/**
 * Each bundle is its own module function, as Node's loader would wrap it, so
 * that src/cli/code-cache.ts compiles the file's text as it was read: a
 * wrapper added at run time makes V8 copy the whole source into one string
 * first. Loaded by Node's own loader (which wraps it again), it calls itself.
 */
const moduleWrapper =
  "((bundle) => (typeof arguments === 'undefined' ? bundle : bundle.apply(this, arguments)))(function (exports, require, module, __filename, __dirname) {";

await build({
  entryPoints: Object.fromEntries(Object.entries(lazy).map(([source, name]) => [name, source])),
  outdir: 'dist',
  outExtension: { '.js': '.cjs' },
  bundle: true,
  format: 'cjs',
  platform: 'node',
  target: 'node20',
  // Prefer ES modules: jsonc-parser's "main" is a UMD build that esbuild cannot follow.
  mainFields: ['module', 'main'],
  minifyWhitespace: true,
  minifySyntax: true,
  sourcemap: 'linked',
  logLevel: 'warning',
  plugins: [separateBundles, unusedJsoncFormatting],
  // Lazy bundles are loaded with require(): import() would go through the slower ES module loader.
  supported: { 'dynamic-import': false },
  define: { 'import.meta.url': 'importMetaUrl' },
  banner: { js: `${moduleWrapper}const importMetaUrl = require('node:url').pathToFileURL(__filename).href;` },
  footer: { js: '})' },
});

// Target scripts are .bash files beside their modules, read through
// new URL('./x.bash', import.meta.url): in the bundle that URL is dist/x.bash.
const copied = new Map();
for (const file of readdirSync('src', { recursive: true })) {
  if (!file.endsWith('.bash')) continue;
  const name = basename(file);
  if (copied.has(name)) throw new Error(`src/${file} and src/${copied.get(name)} would both be dist/${name}: rename one`);
  copied.set(name, file);
  mkdirSync('dist', { recursive: true });
  copyFileSync(join('src', file), join('dist', name));
}
