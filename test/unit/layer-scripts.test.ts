import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { openSync, readdirSync, readSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { projectRoot } from '../helpers/repo.ts';

/** Files under dir that start with a bash shebang: the scripts that run on targets. */
function bashScripts(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile())
    .map((entry) => join(entry.parentPath, entry.name))
    .filter((path) => {
      const fd = openSync(path, 'r');
      const start = Buffer.alloc(32);
      readSync(fd, start, 0, 32, 0);
      closeSync(fd);
      return /^#!\s*(\/usr)?\/bin\/(env )?bash/.test(start.toString('utf8'));
    });
}

const hasShellcheck = spawnSync('shellcheck', ['--version']).status === 0;

test('every bash script of the standard layers and of the example passes shellcheck', { skip: !hasShellcheck && process.env.CI !== 'true' && 'shellcheck is not installed' }, () => {
  const scripts = [...bashScripts(join(projectRoot, 'layers')), ...bashScripts(join(projectRoot, 'examples'))];
  assert.ok(scripts.some((path) => path.endsWith('system-generators/lambda')), 'the lambda generator is among them');
  const result = spawnSync('shellcheck', ['--severity=style', ...scripts], { encoding: 'utf8' });
  assert.equal(result.status, 0, result.stdout + result.stderr);
});
