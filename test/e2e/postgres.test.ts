import assert from 'node:assert/strict';
import { test } from 'node:test';
import { killAll, machineProcesses, nspawnProcesses } from '../../src/sandbox/machine.ts';
import { assertMachineIsItsGeneration } from '../helpers/invariant.ts';
import { makeRepo, writeFiles } from '../helpers/repo.ts';
import { sandboxCli, testSandbox } from '../helpers/sandbox.ts';
import { eventually } from '../helpers/web.ts';

// The postgres layer on two sandbox machines of the cloud image: a runs the cluster main, snapshotted through the
// snapshots layer and sent to b; b runs a streaming replica of it. Passwords come from secret facts, through
// templates.
const { box, skip } = testSandbox('postgres', 'cloud');
const cluster = 'machines/a/usr/local/opt/postgres/clusters';
const password = 'correct-horse-battery-staple';
const replication = 'replication-secret-of-the-fleet';
const declared = 'LISTEN=all\nSNAPSHOTS=1h\nKEEP=5\nSEND_TO=b\nBACKUP_TO=b\nPOOL_PORT=6432\n';
const repo = makeRepo({
  'machines/a/usr/local/opt/initd/layers/10.txt': '+ snapshots\n+ postgres\n',
  'machines/b/usr/local/opt/initd/layers/10.txt': '+ snapshots\n+ postgres\n',
  'inventory.json': '{}',
  'facts/a.env': `ENV_APP_PASSWORD=${password}\nENV_REPLICATION_PASSWORD=${replication}\n`,
  'facts/b.env': `ENV_REPLICATION_PASSWORD=${replication}\n`,
  [`${cluster}/main.conf`]: declared,
  [`${cluster}/main/replication.m4.conf`]: 'PASSWORD=ENV_REPLICATION_PASSWORD\n',
  'machines/b/usr/local/opt/postgres/clusters/main.conf': 'REPLICA_OF=a/main\n',
  'machines/b/usr/local/opt/postgres/clusters/main/replication.m4.conf': 'PASSWORD=ENV_REPLICATION_PASSWORD\n',
  [`${cluster}/main.d/10-tuning.conf`]: 'work_mem = 8MB\nshared_buffers = 64MB\n',
  [`${cluster}/main/roles/app.m4.conf`]: 'LOGIN=yes\nPASSWORD=ENV_APP_PASSWORD\n',
  [`${cluster}/main/databases/appdb.conf`]: 'OWNER=app\nEXTENSIONS=pgcrypto\n',
});
const cli = sandboxCli(box, repo);
const on = (machine: string, command: string) => box!.ssh(machine, `cd / && ${command}`);
const sql = (query: string, database = 'postgres') => on('a', `runuser -u postgres -- psql -X -At -d ${database} -c "${query}"`);
const postmaster = () => on('a', 'systemctl show -p MainPID --value homecloud-postgres@main.service').stdout;

function deploy(what: string, args: string[] = []) {
  const result = cli(['deploy', ...args]);
  assert.equal(result.status, 0, `${what}: ${result.stderr}${result.stdout}`);
  for (const machine of ['a', 'b']) assertMachineIsItsGeneration(box!, machine, what);
  return result;
}

function tune(settings: string) {
  writeFiles(repo, { [`${cluster}/main.d/10-tuning.conf`]: settings });
}

test('a deploy makes the cluster (data checksums, a subvolume), its role, database and extension; the role logs in with its password', { skip }, async () => {
  await box!.up(['a', 'b']);
  deploy('the first deploy');
  assert.equal(on('a', 'stat -c %i /var/lib/homecloud-postgres/main').stdout, '256');
  assert.equal(sql('show data_checksums').stdout, 'on');
  assert.equal(sql("select rolcanlogin from pg_roles where rolname = 'app'").stdout, 't');
  assert.equal(sql("select pg_get_userbyid(datdba) from pg_database where datname = 'appdb'").stdout, 'app');
  assert.equal(sql("select extname from pg_extension where extname = 'pgcrypto'", 'appdb').stdout, 'pgcrypto');
  const login = on('a', `PGPASSWORD='${password}' psql -X -At -h /run/postgresql -U app -d appdb -c 'select current_user'`);
  assert.equal(login.stdout, 'app', login.stderr);
  assert.notEqual(on('a', `PGPASSWORD=wrong psql -X -At -h /run/postgresql -U app -d appdb -c 'select 1'`).status, 0);
  // Through the pool (POOL_PORT=): the role's password, read from the cluster; a superuser is never let in.
  const pooled = on('a', `PGPASSWORD='${password}' psql -X -At -h /run/postgresql -p 6432 -U app -d appdb -c 'select current_user'`);
  assert.equal(pooled.stdout, 'app', pooled.stderr);
  assert.notEqual(on('a', `PGPASSWORD=wrong psql -X -At -h /run/postgresql -p 6432 -U app -d appdb -c 'select 1'`).status, 0);
  assert.notEqual(on('a', `PGPASSWORD= psql -X -At -h /run/postgresql -p 6432 -U postgres -d appdb -c 'select 1'`).status, 0);
  // Over TCP, TLS only.
  const overTcp = (mode: string) =>
    on('a', `PGPASSWORD='${password}' psql -X -At "host=127.0.0.1 port=6432 user=app dbname=appdb sslmode=${mode}" -c 'select 1'`);
  assert.equal(overTcp('require').stdout, '1', overTcp('require').stderr);
  assert.notEqual(overTcp('disable').status, 0);
  // The password is only in files root alone may read (the rendered role, the setup), and in no log.
  const holders = on('a', `grep -rlsF -- '${password}' /usr/local /etc /var/log /run | xargs -r stat -c '%a %U %n'`).stdout.split('\n');
  assert.ok(
    holders.some((line) => line.endsWith('/usr/local/etc/homecloud/postgres/main/setup.sql')),
    holders.join('\n'),
  );
  // The setup's credential is the service's own.
  for (const line of holders)
    assert.match(line, /^600 root \/usr\/local\/|^[46]00 (root|postgres) \/run\/credentials\/homecloud-postgres-setup@main\.service\//, line);
  assert.match(cli(['deploy']).stdout, /nothing to do/i);
  // A major version other than the one the cluster holds is refused by the plan, which says what to do.
  writeFiles(repo, { [`${cluster}/main.conf`]: `${declared}VERSION=16\n` });
  const blocked = cli(['plan', 'a']);
  writeFiles(repo, { [`${cluster}/main.conf`]: declared });
  assert.notEqual(blocked.status, 0);
  assert.match(
    blocked.stdout + blocked.stderr,
    /main\.conf\): VERSION=16, but the cluster main on a holds PostgreSQL 15: a major upgrade is a change of its data; UPGRADE=yes asks for it/,
  );
});

test('a reloadable change keeps the postmaster; a shared_buffers change restarts it, and the plan and the deploy say why', { skip }, () => {
  const before = postmaster();
  tune('work_mem = 16MB\nshared_buffers = 64MB\n');
  const reloaded = deploy('work_mem');
  assert.match(reloaded.stdout, /reload-or-restart homecloud-postgres@main\.service/);
  assert.equal(sql('show work_mem').stdout, '16MB');
  assert.equal(postmaster(), before, 'the postmaster kept running');

  tune('work_mem = 16MB\nshared_buffers = 96MB\n');
  const plan = cli(['plan', 'a']);
  assert.match(plan.stdout, /homecloud-postgres@main\.service restart: \S*50-setting-shared_buffers\.conf changed/, plan.stdout);
  const restarted = deploy('shared_buffers', ['-v']);
  assert.match(restarted.stdout, /restart homecloud-postgres@main\.service: \S*50-setting-shared_buffers\.conf changed/, restarted.stdout);
  assert.equal(sql('show shared_buffers').stdout, '96MB');
  assert.notEqual(postmaster(), before);
});

test('a database no longer declared is refused, naming it, unless the cluster allows dropping', { skip }, () => {
  sql('create database scratch');
  writeFiles(repo, { [`${cluster}/main/databases/more.conf`]: 'OWNER=app\n' });
  const refused = cli(['deploy', 'a']);
  assert.equal(refused.status, 1, refused.stdout);
  assert.match(refused.stderr, /databases that are not declared: scratch/);
  assert.equal(sql("select count(*) from pg_database where datname = 'scratch'").stdout, '1', 'nothing dropped');
  writeFiles(repo, { [`${cluster}/main.conf`]: `${declared}DROP=yes\n` });
  deploy('DROP=yes');
  assert.equal(sql("select count(*) from pg_database where datname = 'scratch'").stdout, '0');
  assert.equal(sql("select count(*) from pg_database where datname = 'more'").stdout, '1');
});

test("b's replica streams from a: pg_stat_replication shows it, with no lag after a write that b then reads", { skip }, async () => {
  await eventually('b streams from a', () => sql("select state from pg_stat_replication where application_name = 'b_main'").stdout === 'streaming', 60);
  assert.equal(sql("select count(*) from pg_replication_slots where slot_name = 'b_main' and active").stdout, '1');
  // Over TLS, b verifying a's certificate (published at a's first start); a connection without TLS is not let in.
  assert.equal(sql("select ssl from pg_stat_ssl join pg_stat_replication using (pid) where application_name = 'b_main'").stdout, 't');
  assert.match(on('b', 'grep primary_conninfo /usr/local/etc/homecloud/postgres/main/postgresql.conf').stdout, /sslmode=verify-ca sslrootcert=/);
  const address = on('b', "sed -n 's/^primary_conninfo = .host=\\([^ ]*\\) .*/\\1/p' /usr/local/etc/homecloud/postgres/main/postgresql.conf").stdout;
  const plain = on('b', `psql -X -At "host=${address} user=app dbname=appdb sslmode=disable" -c 'select 1'`);
  assert.match(plain.stderr, /no pg_hba\.conf entry .* no encryption/, plain.stderr);
  sql('create table if not exists replicated (n int)', 'appdb');
  sql('insert into replicated values (42)', 'appdb');
  await eventually(
    'no lag',
    () => sql("select replay_lsn = pg_current_wal_lsn() from pg_stat_replication where application_name = 'b_main'").stdout === 't',
    20,
  );
  assert.equal(on('b', 'runuser -u postgres -- psql -X -At -d appdb -c "select n from replicated"').stdout, '42');
  assert.equal(on('b', 'runuser -u postgres -- psql -X -At -c "select pg_is_in_recovery()"').stdout, 't', 'b is read-only');
});

test("point in time: rows written, a time noted, a table dropped; recovered from b's pgBackRest repository to that time", { skip }, async () => {
  const stanza = 'pgbackrest --config=/usr/local/etc/homecloud/pgbackrest/pgbackrest.conf --stanza=a-main';
  const pgbackrest = `runuser -u postgres -- ${stanza}`;
  // b takes a base backup of a's cluster over SSH (its timer would, a minute after the deploy).
  const backup = on('b', 'systemctl start homecloud-pgbackrest-backup@a-main.service');
  assert.equal(backup.status, 0, on('b', 'journalctl -q -o cat -u homecloud-pgbackrest-backup@a-main.service | tail -n 5').stdout);
  assert.match(on('b', `runuser -u pgbackrest -- ${stanza} info`).stdout, /full backup: \d{8}-\d{6}F/);
  sql('create table kept (n int)', 'appdb');
  sql('insert into kept select generate_series(1, 1000)', 'appdb');
  await new Promise((resolve) => setTimeout(resolve, 1100));
  const noted = sql('select now()').stdout;
  await new Promise((resolve) => setTimeout(resolve, 1100));
  sql('drop table kept', 'appdb');
  // The drop's WAL is in b's repository: check switches to a new segment and waits until it is archived.
  assert.equal(on('a', `${pgbackrest} check`).status, 0);
  const recovered = cli(['restore', 'a', 'postgres-main', '--pitr', '--at', noted]);
  assert.equal(recovered.status, 0, recovered.stderr);
  const aside = /kept in (\/var\/lib\/homecloud-postgres\/main\.before-\d{8}T\d{6}Z)/.exec(recovered.stdout)?.[1];
  assert.ok(aside, recovered.stdout);
  assert.equal(sql('select count(*) from kept', 'appdb').stdout, '1000', 'the rows and the table are back');
  assert.equal(sql('select pg_is_in_recovery()').stdout, 'f', 'promoted: it takes writes');
  assert.equal(on('a', `test -s ${aside}/PG_VERSION`).status, 0, 'the cluster as it was is kept');
  // Archiving goes on, on the new timeline; the machine is still its generation.
  assert.equal(on('a', `${pgbackrest} check`).status, 0);
  assertMachineIsItsGeneration(box!, 'a', 'after the recovery');
  // The keys let in only pgBackRest's remote for the shared stanza: a shell is refused.
  const shell = on(
    'a',
    'runuser -u postgres -- /usr/local/libexec/homecloud/pgbackrest-ssh pgbackrest@$(sed -n "s/^repo1-host=//p" /usr/local/etc/homecloud/pgbackrest/pgbackrest.conf) cat /etc/shadow',
  );
  assert.notEqual(shell.status, 0);
  assert.match(on('b', 'journalctl -q -o cat -t pgbackrest-remote').stdout, /refused for a \(repo\): not pgbackrest/);
});

test('crash consistency: a snapshot taken under pgbench, the machine killed, the snapshot started on b: the pgbench invariants hold', { skip }, async () => {
  assert.equal(on('a', 'runuser -u postgres -- pgbench -q -i -s 5 appdb 2>&1 | tail -1').status, 0);
  assert.equal(on('a', 'systemd-run -q --unit=bench -p User=postgres pgbench -c 2 -T 120 appdb').status, 0);
  await eventually('pgbench writes', () => Number(sql('select count(*) from pgbench_history', 'appdb').stdout) > 200, 30);
  // A snapshot now, under load, sent to b.
  assert.equal(on('a', 'systemctl start homecloud-snapshot@postgres-main.service').status, 0);
  const log = on('a', 'journalctl -q -o cat -u homecloud-snapshot@postgres-main.service').stdout;
  const stamp = /postgres-main: sent (\d{8}T\d{6}Z) to b/.exec(log.split('\n').reverse().join('\n'))?.[1];
  assert.ok(stamp, log);
  // The machine dies, not shut down.
  const root = box!.paths.machineDir('a');
  await killAll([...nspawnProcesses(root), ...machineProcesses(root)]);
  // b starts the received snapshot as a cluster of its own: crash recovery from its WAL, then the invariants.
  const clone = '/var/lib/homecloud-received/clone';
  const started = on(
    'b',
    [
      'set -e',
      `btrfs -q subvolume snapshot /var/lib/homecloud-received/a/postgres-main/${stamp} ${clone}`,
      `rm -f ${clone}/postmaster.pid`,
      `runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_ctl -w -t 60 -D ${clone} -l /tmp/clone.log -o "-c config_file=/dev/null -c port=5499 -c listen_addresses='' -c unix_socket_directories=/tmp" start >/dev/null`,
      'grep -c "automatic recovery in progress\\|redo done" /tmp/clone.log || true',
    ].join('\n'),
  );
  assert.equal(started.status, 0, started.stderr);
  const sums = on(
    'b',
    `runuser -u postgres -- psql -X -At -h /tmp -p 5499 -d appdb -c "select (select sum(abalance) from pgbench_accounts), (select sum(bbalance) from pgbench_branches), (select sum(tbalance) from pgbench_tellers), (select sum(delta) from pgbench_history), (select count(*) from pgbench_history)"`,
  );
  const [accounts, branches, tellers, history, rows] = sums.stdout.split('|');
  assert.ok(Number(rows) > 0, sums.stdout + sums.stderr);
  assert.equal(accounts, branches, sums.stdout);
  assert.equal(branches, tellers, sums.stdout);
  assert.equal(tellers, history, sums.stdout);
  assert.equal(on('b', `runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_ctl -w -D ${clone} stop -m fast >/dev/null`).status, 0);
});
