import assert from 'node:assert/strict';
import { test } from 'node:test';
import { eagerLimit } from '../../src/util/eager-limit.ts';

test('a task starts within the call while a slot is free, and waits for one otherwise', async () => {
  const limit = eagerLimit(2);
  const started: number[] = [];
  const releases: (() => void)[] = [];
  const task = (n: number) => () => {
    started.push(n);
    return new Promise<number>((resolve) => releases.push(() => resolve(n)));
  };
  const results = [1, 2, 3].map((n) => limit(task(n)));
  assert.deepEqual(started, [1, 2]);
  releases[0]!();
  assert.equal(await results[0], 1);
  await new Promise((resolve) => setImmediate(resolve));
  assert.deepEqual(started, [1, 2, 3]);
  releases[1]!();
  releases[2]!();
  assert.deepEqual(await Promise.all(results), [1, 2, 3]);
});

test('a task that fails or throws gives its error to its caller and frees its slot', async () => {
  const limit = eagerLimit(1);
  await assert.rejects(
    limit(() => Promise.reject(new Error('failed'))),
    /failed/,
  );
  await assert.rejects(
    limit(() => {
      throw new Error('thrown');
    }),
    /thrown/,
  );
  assert.equal(await limit(() => Promise.resolve('next')), 'next');
});
