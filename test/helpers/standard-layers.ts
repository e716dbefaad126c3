import { cpSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';
import { projectRoot, runCli, writeFiles } from './repo.ts';

export const standardLayers = join(projectRoot, 'layers');

/** Every file (not directory) under `dir`, as paths relative to it; symlinks are listed, not followed. */
export function walkFiles(dir: string, prefix = ''): string[] {
  return readdirSync(join(dir, prefix), { withFileTypes: true }).flatMap((entry) => {
    const path = join(prefix, entry.name);
    return entry.isDirectory() ? walkFiles(dir, path) : [path];
  });
}

export { isShellScript } from '../../src/check/shellcheck.ts';

/**
 * The example repository, plus one machine per standard layer (with the
 * layer's defaults only), built: every standard layer's files as machines get
 * them, templates rendered. Returns the built trees by machine. Removed after
 * the test file.
 */
export function buildEveryStandardLayer(): { repo: string; trees: Record<string, string> } {
  const repo = mkdtempSync(join(tmpdir(), 'homecloud-layers-'));
  after(() => rmSync(repo, { recursive: true, force: true }));
  cpSync(join(projectRoot, 'examples/homelab'), repo, { recursive: true, verbatimSymlinks: true, filter: (source) => !source.includes('/var') });
  const layers = readdirSync(standardLayers, { withFileTypes: true })
    .filter((entry) => entry.isDirectory() && entry.name !== '_')
    .map((entry) => entry.name);
  writeFiles(repo, Object.fromEntries(layers.map((layer) => [`machines/layer-${layer}/usr/local/opt/initd/layers/10-layers.txt`, `+ ${layer}\n`])));
  const built = runCli(['-C', repo, 'build']);
  if (built.status !== 0) throw new Error(`building every standard layer failed (a layer without defaults for its facts?):\n${built.stderr}${built.stdout}`);
  const machines = readdirSync(join(repo, 'machines'));
  return { repo, trees: Object.fromEntries(machines.map((machine) => [machine, join(repo, 'var/build', machine, 'tree')])) };
}
