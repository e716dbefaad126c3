import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';
import { projectRoot } from '../helpers/repo.ts';
import { buildEveryStandardLayer, isShellScript, walkFiles } from '../helpers/standard-layers.ts';

/** Files under dir that start with a bash or sh shebang: the scripts that run on targets. */
function shellScripts(dir: string): string[] {
  return walkFiles(dir)
    .map((path) => join(dir, path))
    .filter(isShellScript);
}

/** From the project root: scripts name the base layer's library by its path there (`# shellcheck source=layers/_/...`). */
function shellcheck(scripts: string[]): void {
  const result = spawnSync('shellcheck', ['--external-sources', '--severity=style', ...scripts], { cwd: projectRoot, encoding: 'utf8' });
  assert.equal(result.status, 0, result.stdout + result.stderr);
}

const hasShellcheck = spawnSync('shellcheck', ['--version']).status === 0;
const skip = !hasShellcheck && process.env.CI !== 'true' && 'shellcheck is not installed';

test('every bash script of the standard layers and of the example passes shellcheck', { skip }, () => {
  const scripts = [...shellScripts(join(projectRoot, 'layers')), ...shellScripts(join(projectRoot, 'examples'))];
  assert.ok(
    scripts.some((path) => path.endsWith('initd/generators/lambda')),
    'the lambda generator is among them',
  );
  assert.ok(
    scripts.some((path) => path.endsWith('/_/usr/local/libexec/homecloud/failed-units')),
    "the base layer's scripts are among them",
  );
  assert.ok(
    scripts.some((path) => path.endsWith('/_/usr/local/lib/homecloud/lib.bash')),
    "the base layer's library is among them",
  );
  shellcheck(scripts);
});

test('every script in the built trees of the example and of every standard layer passes shellcheck (templates rendered)', { skip }, () => {
  const { trees } = buildEveryStandardLayer();
  shellcheck(Object.values(trees).flatMap(shellScripts));
});
