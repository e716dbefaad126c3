import { HomecloudError } from '../load/errors.ts';
import type { RepoPaths } from '../load/repo.ts';
import type { Target } from '../transport/transport.ts';
import { shellQuote } from '../util/quote.ts';
import { scriptFailure, underLock } from './session.ts';
import type { RestoreOptions } from './snapshots.ts';

/**
 * Point-in-time recovery of a postgres cluster (`homecloud restore MACHINE postgres-NAME --pitr --at TIME`) from
 * its pgBackRest backups and archived WAL on the machine it backs up to, by the postgres layer's own script under
 * the machine's lock. The data directory as it was is kept aside on the machine: putting it back undoes this.
 */
const script = '/usr/local/libexec/homecloud/postgres-recover';
const clusterPattern = /^postgres-([a-z0-9][a-z0-9_-]{0,62})$/;
/** What PostgreSQL's recovery_target_time reads: a date and time, with seconds, fractions and a zone optional. */
const timePattern = /^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?(?:Z|[+-]\d{2}(?::?\d{2})?)?$/;

export interface Recovered {
  cluster: string;
  time: string;
  /** Where the data directory as it was is kept, on the machine. */
  aside: string;
}

/** The cluster a restore --pitr names (postgres-<cluster>, as its snapshots are named), and a time it can take. */
export function checkRecovery(name: string, at: string | undefined): { cluster: string; time: string } {
  const cluster = clusterPattern.exec(name)?.[1];
  if (!cluster)
    throw new HomecloudError(
      `--pitr recovers a postgres cluster: "${name}" is not postgres-<cluster>`,
      undefined,
      'homecloud restore MACHINE postgres-main --pitr --at TIME',
    );
  if (at === undefined) throw new HomecloudError('--pitr needs the time to recover to (--at)', undefined, '--at "2026-12-02 07:15:00+00"');
  if (!timePattern.test(at) || Number.isNaN(Date.parse(at.replace(' ', 'T').replace(/([+-]\d{2})$/, '$1:00'))))
    throw new HomecloudError(
      `--at ${JSON.stringify(at)} is not a time PostgreSQL reads`,
      undefined,
      'give a time like "2026-12-02 07:15:00+00" or 2026-12-02T07:15:00Z',
    );
  return { cluster, time: at };
}

export async function recoverCluster(repo: RepoPaths, target: Target, name: string, options: RestoreOptions): Promise<Recovered> {
  const { cluster, time } = checkRecovery(name, options.at);
  return underLock(repo, target, 'restore', options, async (locked) => {
    const result = await locked.run(`${script} ${shellQuote(cluster)} ${shellQuote(time)}`);
    const done = /^recovered\t[^\t]+\t[^\t]+\t(\/var\/lib\/homecloud-postgres\/[A-Za-z0-9_.-]+)$/m.exec(result.stdout);
    if (result.status !== 0 || !done)
      throw scriptFailure(target, result, `the recovery of ${cluster}`, `see journalctl -u homecloud-postgres@${cluster}.service on the machine`);
    return { cluster, time, aside: done[1]! };
  });
}
