import assert from 'node:assert/strict';
import { test } from 'node:test';
import { checkRecovery } from '../../src/apply/pitr.ts';

// homecloud restore --pitr: what it takes before anything reaches the machine (test/e2e/postgres.test.ts recovers).
test('--pitr takes postgres-<cluster> and a time PostgreSQL reads', () => {
  assert.deepEqual(checkRecovery('postgres-main', '2026-12-02 07:11:19.140865+00'), { cluster: 'main', time: '2026-12-02 07:11:19.140865+00' });
  assert.deepEqual(checkRecovery('postgres-app_2', '2026-12-02T07:11:19Z'), { cluster: 'app_2', time: '2026-12-02T07:11:19Z' });
  assert.equal(checkRecovery('postgres-main', '2026-12-02 07:11').time, '2026-12-02 07:11');
});

test('--pitr refuses what is not a cluster or a time, saying what to give', () => {
  const cases: [string, string | undefined, RegExp][] = [
    ['main', '2026-12-02 07:11:19+00', /"main" is not postgres-<cluster>/],
    ['postgres-Main', '2026-12-02 07:11:19+00', /is not postgres-<cluster>/],
    ['postgres-main', undefined, /needs the time to recover to \(--at\)/],
    ['postgres-main', 'yesterday', /--at "yesterday" is not a time PostgreSQL reads/],
    ['postgres-main', "2026-12-02 07:11:19'; drop", /is not a time/],
    ['postgres-main', '2026-13-45 07:11:19+00', /is not a time/],
  ];
  for (const [name, at, message] of cases) assert.throws(() => checkRecovery(name, at), message, `${name} ${at}`);
});
