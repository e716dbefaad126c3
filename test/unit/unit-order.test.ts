// One directive order in every unit file and drop-in the standard layers and the example ship, as systemd's
// own units are written: [Unit] first (Description= first in it), the type's section, [Install] last; in
// [Service], Type= first. A reader then finds what a unit is and how it runs in the same place everywhere.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { projectRoot } from '../helpers/repo.ts';
import { orderProblems } from '../helpers/unit-order.ts';

const unitFile = /\/systemd\/system\/(?:[^/]+\.(?:service|socket|timer|path|slice|mount|target)|[^/]+\.d\/[^/]+\.conf)$/;

function unitFiles(dir: string): string[] {
  const found: string[] = [];
  const walk = (path: string) => {
    for (const name of readdirSync(path)) {
      const full = join(path, name);
      if (name === 'var' || name === 'node_modules') continue;
      const stats = statSync(full, { throwIfNoEntry: false });
      if (stats?.isDirectory()) walk(full);
      else if (stats?.isFile() && unitFile.test(full.replace(/\.m4\./, '.'))) found.push(full);
    }
  };
  walk(dir);
  return found;
}

test('every unit file and drop-in of the standard layers and the example keeps the one directive order', () => {
  const files = [...unitFiles(join(projectRoot, 'layers')), ...unitFiles(join(projectRoot, 'examples'))];
  assert.ok(files.length > 15, `found ${files.length} unit files`);
  const problems = files.flatMap((file) => orderProblems(readFileSync(file, 'utf8')).map((problem) => `${file.slice(projectRoot.length + 1)}: ${problem}`));
  assert.deepEqual(problems, []);
});

test('the order check finds each kind of break', () => {
  assert.deepEqual(orderProblems('[Unit]\nDescription=x\n\n[Service]\nType=oneshot\nExecStart=/bin/true\n\n[Install]\nWantedBy=multi-user.target\n'), []);
  assert.deepEqual(orderProblems('[Service]\nExecStart=/bin/true\nType=oneshot\n[Unit]\nAfter=a\nDescription=x\n'), [
    'sections in the order Service, Unit: [Unit] first, [Install] last',
    'Description= is not the first line of [Unit]',
    'Type= is not the first line of [Service]',
  ]);
  // A template's sections, quoted for m4.
  assert.deepEqual(orderProblems('[[Unit]]\nDescription=x\n\n[[Slice]]\nMemoryMax=m5_assert([ENV_X])\n'), []);
  assert.deepEqual(orderProblems('[[Unit]]\nAfter=a\nDescription=x\n'), ['Description= is not the first line of [Unit]']);
});
