import assert from 'node:assert/strict';
import { test } from 'node:test';
import { build, layerList, makeRepo, readTree } from '../helpers/repo.ts';

test('a layer file reaches the machine tree at its path', async () => {
  const root = makeRepo({ ...layerList('web'), 'layers/web/usr/local/etc/web.conf': 'port 80\n' });
  const report = await build(root);
  assert.equal(report.machines[0]!.status, 'built');
  assert.equal(readTree(root, 'm', '/usr/local/etc/web.conf'), 'port 80\n');
});
