import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, test } from 'node:test';
import { projectRoot, runCli } from '../helpers/repo.ts';

const copy = mkdtempSync(join(tmpdir(), 'homecloud-example-'));
after(() => rmSync(copy, { recursive: true, force: true }));

/** Every file under dir with its mtime and inode: what "writes nothing" must leave alone. */
function snapshot(dir: string): Map<string, string> {
  const seen = new Map<string, string>();
  const visit = (path: string) => {
    for (const name of readdirSync(path)) {
      const full = join(path, name);
      const stats = statSync(full, { throwIfNoEntry: false }) ?? statSync(full);
      seen.set(full, `${stats.mtimeMs}:${stats.ino}:${stats.mode}`);
      if (stats.isDirectory()) visit(full);
    }
  };
  visit(dir);
  return seen;
}

test('building the example again: the second build writes only its up-to-date stamp, the third nothing', () => {
  cpSync(join(projectRoot, 'examples/homelab'), copy, { recursive: true, verbatimSymlinks: true, filter: (source) => !source.includes('/var') });
  const first = runCli(['-C', copy, 'build']);
  assert.equal(first.status, 0, first.stderr);
  assert.match(first.stdout, /Built 3 of 3 machines/);
  const stamp = join(copy, 'var/build/up-to-date.json');
  const before = snapshot(join(copy, 'var'));
  const second = runCli(['-C', copy, 'build']);
  assert.equal(second.status, 0, second.stderr);
  assert.match(second.stdout, /All 3 machines are up to date/);
  const after = snapshot(join(copy, 'var'));
  const withoutStamp = (files: Map<string, string>) => new Map([...files].filter(([path]) => path !== stamp && path !== dirname(stamp)));
  assert.deepEqual(withoutStamp(after), withoutStamp(before));
  assert.ok(after.has(stamp));
  const third = runCli(['-C', copy, 'build']);
  assert.equal(third.status, 0, third.stderr);
  assert.match(third.stdout, /All 3 machines are up to date/);
  assert.deepEqual(snapshot(join(copy, 'var')), after);
});

test('the example builds what its README promises', () => {
  const explain = runCli(['-C', copy, 'explain', 'nas', '/usr/local/opt/hello/greeting.txt']);
  assert.equal(explain.status, 0, explain.stderr);
  assert.match(explain.stdout, /ENV_GREETING\s+Good morning\s+facts\/nas\.json:2/);
  const override = runCli(['-C', copy, 'explain', 'media', '/usr/local/opt/hello/greeting.txt']);
  assert.match(override.stdout, /overrides\s+layers\/hello\/usr\/local\/opt\/hello\/greeting\.m4\.txt/);
});
