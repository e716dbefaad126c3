// The standard layers' scripts pass shellcheck: as written, and as machines
// get them (templates rendered), for every layer under layers/.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';
import { buildEveryStandardLayer, isShellScript, standardLayers, walkFiles } from '../helpers/standard-layers.ts';

const hasShellcheck = spawnSync('shellcheck', ['--version']).status === 0;
const skip = hasShellcheck ? false : process.env.CI === 'true' ? false : 'shellcheck is not installed (npm test installs it)';

function shellcheck(files: string[]): void {
  assert.ok(files.length > 0, 'there are scripts to check');
  const result = spawnSync('shellcheck', ['--format=gcc', ...files], { encoding: 'utf8' });
  assert.equal(result.status, 0, result.stdout + result.stderr);
}

test('every script in a standard layer passes shellcheck', { skip }, () => {
  const scripts = walkFiles(standardLayers).map((path) => join(standardLayers, path)).filter((path) => !path.includes('.m4.') && isShellScript(path));
  assert.ok(scripts.some((path) => path.endsWith('/_/usr/local/libexec/homecloud/failed-units')), 'the base layer\'s scripts are found');
  shellcheck(scripts);
});

test('every script in the built trees of the example and of every standard layer passes shellcheck', { skip }, () => {
  const { trees } = buildEveryStandardLayer();
  shellcheck(Object.values(trees).flatMap((tree) => walkFiles(tree).map((path) => join(tree, path)).filter(isShellScript)));
});
