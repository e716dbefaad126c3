import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { childPath } from '../../src/util/child-path.ts';

test('childPath is join for every directory and name, plain or not', () => {
  const dirs = ['/', '/repo', '/repo/var/build', 'repo', 'repo/', '.', '', '/repo/'];
  const names = ['m1', '-', '-x', 'a.json', '..json', '.hidden', '.', '..', '', 'a/b', '/abs', 'a/../b', 'a/'];
  for (const dir of dirs) for (const name of names) assert.equal(childPath(dir, name), join(dir, name), `${JSON.stringify(dir)} + ${JSON.stringify(name)}`);
});
