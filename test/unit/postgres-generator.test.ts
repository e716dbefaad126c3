import assert from 'node:assert/strict';
import { readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { baseLibraries, runGenerator, type GeneratorRun } from '../helpers/generator.ts';

// The postgres layer's two build-time generators, run as the build runs them (test/e2e/postgres.test.ts runs what
// they make): postgres (a cluster, its settings) and postgres-setup (roles, databases, extensions).
const units = 'out/usr/local/lib/systemd/system';
const clusters = 'usr/local/opt/postgres/clusters';
const libraries = [...baseLibraries, 'postgres/usr/local/lib/postgres/replicas.bash'];

/** One of the layer's generators. */
const run = (options: Omit<GeneratorRun, 'layer' | 'libraries'>) => runGenerator({ layer: 'postgres', libraries, ...options });
const generate = (files: Record<string, string>, generator = 'postgres') => run({ generator, files, fleet: { h1: {} } });

test("a cluster: its configuration, its unit's drop-in, and a drop-in per setting that takes a restart", () => {
  const { result, read, list, root } = generate({
    [`${clusters}/main.conf`]: 'PORT=5433\nLISTEN=10.0.0.5\nALLOW_FROM=10.0.0.0/24\n',
    [`${clusters}/main.d/10-a.conf`]: "work_mem = 8MB  # per sort\nshared_buffers = 64MB\n\n# a comment\nwal_level = 'replica'\n",
    [`${clusters}/main.d/20-b.conf`]: 'work_mem = 16MB\n',
  });
  assert.equal(result.status, 0, result.stderr);
  const conf = read('out/usr/local/etc/homecloud/postgres/main/postgresql.conf');
  assert.match(conf, /^data_directory = '\/var\/lib\/homecloud-postgres\/main'$/m);
  assert.match(conf, /^port = 5433$/m);
  assert.match(conf, /^listen_addresses = '10\.0\.0\.5'$/m);
  // In first-seen order, a later fragment's value winning.
  assert.match(conf, /^work_mem = 16MB\nshared_buffers = 64MB\nwal_level = 'replica'$/m);
  assert.equal(
    read('out/usr/local/etc/homecloud/postgres/main/pg_hba.conf')
      .split('\n')
      .filter((line) => line && !line.startsWith('#'))
      .join('\n'),
    'local all postgres peer\nlocal all all scram-sha-256\nhostssl all all 10.0.0.0/24 scram-sha-256',
    'TCP over TLS only',
  );
  assert.match(conf, /^ssl = on\nssl_cert_file = '\/var\/lib\/homecloud-postgres-tls\/main\/server\.crt'\n/m);
  assert.match(
    read(`${units}/homecloud-postgres@main.service.d/50-cluster.conf`),
    /^Environment=PG_VERSION=15 PG_DATA=\/var\/lib\/homecloud-postgres\/main PG_TLS=yes$/m,
  );
  assert.deepEqual(
    list(`${units}/homecloud-postgres@main.service.d`),
    ['50-cluster.conf', '50-setting-listen_addresses.conf', '50-setting-port.conf', '50-setting-shared_buffers.conf', '50-setting-wal_level.conf'],
    'work_mem reloads: no drop-in',
  );
  assert.match(read(`${units}/homecloud-postgres@main.service.d/50-setting-shared_buffers.conf`), /^# shared_buffers = 64MB$/m);
  assert.equal(readlinkSync(join(root, units, 'multi-user.target.wants/homecloud-postgres@main.service')), '../homecloud-postgres@main.service');
});

test('clusters that cannot work fail the build, each naming its file', () => {
  const cases: [Record<string, string>, RegExp][] = [
    [{ [`${clusters}/main.conf`]: 'VERSION=latest\n' }, /main\.conf: VERSION=latest is not a PostgreSQL major version/],
    [{ [`${clusters}/main.conf`]: 'PORT=99999\n' }, /main\.conf: PORT=99999 is not a port/],
    [{ [`${clusters}/main.conf`]: 'LISTEN=everywhere\n' }, /LISTEN: "everywhere" is neither socket nor an IP address/],
    [{ [`${clusters}/main.conf`]: 'ALLOW_FROM=all\n' }, /ALLOW_FROM: "all" is not a network/],
    [{ [`${clusters}/main.conf`]: 'USER=root\n' }, /USER= is not a setting of a cluster/],
    [{ [`${clusters}/main.conf`]: '', [`${clusters}/main.d/10.conf`]: 'port = 1234\n' }, /main\.d\/10\.conf: port is set by homecloud/],
    [{ [`${clusters}/main.conf`]: '', [`${clusters}/main.d/10.conf`]: "search_path = 'a''; drop\n" }, /search_path: .* is neither a word nor a quoted string/],
    [{ [`${clusters}/main.conf`]: '', [`${clusters}/main.d/10.conf`]: '= 5\n' }, /"= 5" is not a setting/],
    [
      { [`${clusters}/main.conf`]: '', [`${clusters}/main.d/10.conf`]: 'not a setting!\n' },
      /main\.d\/10\.conf: not: "a setting!" is neither a word nor a quoted string/,
    ],
    [{ [`${clusters}/a.conf`]: '', [`${clusters}/b.conf`]: '' }, /b\.conf: PORT=5432 is a's too/],
  ];
  for (const [files, message] of cases) {
    const { result } = generate(files);
    assert.equal(result.status, 1, JSON.stringify(files));
    assert.match(result.stderr, message, JSON.stringify(files));
  }
});

test('roles, databases and extensions: an idempotent setup, passwords quoted, nothing dropped by omission', () => {
  const { result, read, root } = generate(
    {
      [`${clusters}/main.conf`]: 'PORT=5433\n',
      [`${clusters}/main/roles/app.conf`]: "PASSWORD=it's a long secret\n",
      [`${clusters}/main/roles/reader.conf`]: 'LOGIN=no\n',
      [`${clusters}/main/databases/appdb.conf`]: 'OWNER=app\nEXTENSIONS=pgcrypto hstore\n',
    },
    'postgres-setup',
  );
  assert.equal(result.status, 0, result.stderr);
  const setup = read('out/usr/local/etc/homecloud/postgres/main/setup.sql');
  assert.match(setup, /^SELECT format\('CREATE ROLE %I', 'app'\) WHERE NOT EXISTS \(SELECT FROM pg_roles WHERE rolname = 'app'\)\\gexec$/m);
  assert.match(setup, /^ALTER ROLE "app" LOGIN NOSUPERUSER PASSWORD 'it''s a long secret';$/m);
  assert.match(setup, /^ALTER ROLE "reader" NOLOGIN NOSUPERUSER PASSWORD NULL;$/m);
  assert.match(setup, /^SELECT format\('CREATE DATABASE %I OWNER %I', 'appdb', 'app'\)/m);
  assert.match(setup, /^\\connect "appdb"\nCREATE EXTENSION IF NOT EXISTS "pgcrypto";\n\\connect "appdb"\nCREATE EXTENSION IF NOT EXISTS "hstore";$/m);
  assert.match(setup, /RAISE EXCEPTION 'databases that are not declared: %/);
  assert.doesNotMatch(setup, /DROP /);
  assert.match(read(`${units}/homecloud-postgres-setup@main.service.d/50-setup.conf`), /^Environment=PG_PORT=5433$/m);
  assert.equal(readlinkSync(join(root, units, 'multi-user.target.wants/homecloud-postgres-setup@main.service')), '../homecloud-postgres-setup@main.service');
  const dropping = generate({ [`${clusters}/main.conf`]: 'DROP=yes\n' }, 'postgres-setup');
  assert.match(
    dropping.read('out/usr/local/etc/homecloud/postgres/main/setup.sql'),
    /^SELECT format\('DROP DATABASE %I', datname\) FROM pg_database WHERE datname NOT IN \('postgres', 'template0', 'template1'\)\\gexec$/m,
  );
});

test('roles and databases that cannot work fail the build, naming the file; a password is never shown', () => {
  const cases: [Record<string, string>, RegExp][] = [
    [{ [`${clusters}/main/roles/Bad-Name.conf`]: '' }, /roles\/Bad-Name\.conf: "Bad-Name" is not a role name/],
    [{ [`${clusters}/main/roles/postgres.conf`]: '' }, /"postgres" is not a role name/],
    [{ [`${clusters}/main/roles/app.conf`]: 'PASSWORD=short\n' }, /roles\/app\.conf: its PASSWORD is shorter than 12 characters/],
    [{ [`${clusters}/main/roles/app.conf`]: 'SUPERUSER=yes\n' }, /SUPERUSER= is not a setting of a role/],
    [{ [`${clusters}/main/databases/appdb.conf`]: 'OWNER=nobody\n' }, /databases\/appdb\.conf: OWNER=nobody is not a role declared/],
    [{ [`${clusters}/main/databases/appdb.conf`]: 'EXTENSIONS=x;drop\n' }, /EXTENSIONS: "x;drop" is not an extension name/],
    [{ [`${clusters}/main/databases/template1.conf`]: '' }, /"template1" is not a database name/],
  ];
  for (const [files, message] of cases) {
    const { result } = generate({ [`${clusters}/main.conf`]: '', ...files }, 'postgres-setup');
    assert.equal(result.status, 1, JSON.stringify(files));
    assert.match(result.stderr, message);
    assert.doesNotMatch(result.stderr, /short\b(?!er)/, 'the password is not shown');
  }
});

test('a replica and its primary: the replica streams from its own slot with a passfile credential; the primary lets it in and makes the slot', () => {
  const password = 'a-replication-secret';
  const replica = run({
    files: { [`${clusters}/main.conf`]: 'REPLICA_OF=db1/main\n' },
    machine: 'db2',
    fleet: { db1: { address: '10.0.0.1', offers: [['postgres-port', 'main 5433']] }, db2: { address: '10.0.0.2' } },
  });
  assert.equal(replica.result.status, 0, replica.result.stderr);
  assert.ok(replica.lines.includes(`offer\tpostgres-replica-of\tdb1 main main\t/${clusters}/main.conf`), replica.lines.join('\n'));
  const conf = replica.read('out/usr/local/etc/homecloud/postgres/main/postgresql.conf');
  assert.match(
    conf,
    /^primary_conninfo = 'host=10\.0\.0\.1 port=5433 user=replicator passfile=\/run\/credentials\/homecloud-postgres@main\.service\/pgpass application_name=db2_main sslmode=require'$/m,
  );
  assert.match(conf, /^primary_slot_name = 'db2_main'$/m);
  assert.match(replica.read(`${units}/homecloud-postgres@main.service.d/50-cluster.conf`), /"PG_PRIMARY=10\.0\.0\.1 5433 db2_main"/);
  const replicaSetup = run({
    generator: 'postgres-setup',
    files: { [`${clusters}/main.conf`]: 'REPLICA_OF=db1/main\n', [`${clusters}/main/replication.conf`]: `PASSWORD=${password}:x\n` },
    machine: 'db2',
    fleet: { db1: {}, db2: {} },
  });
  assert.equal(replicaSetup.result.status, 0, replicaSetup.result.stderr);
  assert.equal(replicaSetup.read('out/usr/local/etc/homecloud/postgres/main/pgpass'), `*:*:*:replicator:${password}\\:x\n`);
  assert.match(
    replicaSetup.read(`${units}/homecloud-postgres@main.service.d/60-replication.conf`),
    /^LoadCredential=pgpass:\/usr\/local\/etc\/homecloud\/postgres\/main\/pgpass$/m,
  );
  assert.deepEqual(replicaSetup.list('out/usr/local/etc/homecloud/postgres/main'), ['pgpass'], 'a replica runs no setup of its own');

  const fleet = { db1: { address: '10.0.0.1' }, db2: { address: '10.0.0.2', offers: [['postgres-replica-of', 'db1 main main']] as [string, string][] } };
  const primary = run({ files: { [`${clusters}/main.conf`]: 'PORT=5433\nLISTEN=all\n' }, machine: 'db1', fleet });
  assert.equal(primary.result.status, 0, primary.result.stderr);
  assert.match(primary.read('out/usr/local/etc/homecloud/postgres/main/pg_hba.conf'), /^hostssl replication replicator 10\.0\.0\.2\/32 scram-sha-256$/m);
  // Once the primary has published its certificate, the replica verifies it.
  const certificate = '-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIU\n-----END CERTIFICATE-----\n';
  const verifying = run({
    files: { [`${clusters}/main.conf`]: 'REPLICA_OF=db1/main\n' },
    machine: 'db2',
    fleet: { db1: { address: '10.0.0.1', offers: [['postgres-port', 'main 5433']], public: { 'postgres-main.crt': certificate } }, db2: {} },
  });
  assert.equal(verifying.read('out/usr/local/etc/homecloud/postgres/main/primary.crt'), certificate);
  assert.match(
    verifying.read('out/usr/local/etc/homecloud/postgres/main/postgresql.conf'),
    /application_name=db2_main sslmode=verify-ca sslrootcert=\/usr\/local\/etc\/homecloud\/postgres\/main\/primary\.crt'$/m,
  );
  assert.match(primary.read('out/usr/local/etc/homecloud/postgres/main/postgresql.conf'), /^listen_addresses = '\*'$/m);
  assert.match(primary.read('out/usr/local/etc/nftables/input.d/50-postgres-main.nft'), /^ip saddr 10\.0\.0\.2 tcp dport 5433 accept$/m);
  const primarySetup = run({
    generator: 'postgres-setup',
    files: { [`${clusters}/main.conf`]: 'PORT=5433\n', [`${clusters}/main/replication.conf`]: `PASSWORD=${password}\n` },
    machine: 'db1',
    fleet,
  });
  const setup = primarySetup.read('out/usr/local/etc/homecloud/postgres/main/setup.sql');
  assert.match(setup, new RegExp(`^ALTER ROLE replicator REPLICATION LOGIN NOSUPERUSER PASSWORD '${password}';$`, 'm'));
  assert.match(setup, /^SELECT pg_create_physical_replication_slot\('db2_main'\) WHERE NOT EXISTS/m);
  assert.match(setup, /rolname NOT IN \('postgres', 'replicator'\)/);
});

test("backups to another machine: WAL archived to its pgBackRest repository, its base backups on a timer, each side letting in only the other's remote", () => {
  const key = (n: number) => `AAAAC3NzaC1lZDI1NTE5AAAAI${String(n).repeat(43)}`;
  const fleet = {
    db: { address: '10.0.0.1', public: { 'postgres-archive-ssh': `${key(1)}\n`, 'ssh-host-ed25519': `${key(2)}\n` } },
    store: { address: '10.0.0.2', public: { 'postgres-backup-ssh': `${key(3)}\n`, 'ssh-host-ed25519': `${key(4)}\n` } },
  };
  const db = run({
    files: { [`${clusters}/main.conf`]: 'PORT=5433\nBACKUP_TO=store\nBACKUPS=6h\nFULL_BACKUPS=2w\nBACKUP_KEEP=3\n' },
    machine: 'db',
    fleet,
  });
  assert.equal(db.result.status, 0, db.result.stderr);
  assert.ok(db.lines.includes(`offer\tpostgres-backup\tstore main 5433 6h 3 14\t/${clusters}/main.conf`), db.lines.join('\n'));
  const conf = db.read('out/usr/local/etc/homecloud/postgres/main/postgresql.conf');
  assert.match(conf, /^archive_mode = on\narchive_command = '\/usr\/bin\/pgbackrest --config=\S+ --stanza=db-main archive-push %p'\narchive_timeout = 60$/m);
  assert.match(db.read(`${units}/homecloud-postgres@main.service.d/50-setting-archive_mode.conf`), /^# archive_mode = on$/m);
  const pgbackrest = db.read('out/usr/local/etc/homecloud/pgbackrest/pgbackrest.conf');
  assert.match(
    pgbackrest,
    /^\[db-main\]\npg1-path=\/var\/lib\/homecloud-postgres\/main\npg1-port=5433\npg1-socket-path=\/run\/postgresql\nrepo1-host=10\.0\.0\.2\nrepo1-host-user=pgbackrest\n/m,
  );
  assert.match(db.read('out/usr/local/etc/homecloud/pgbackrest/known_hosts'), new RegExp(`^10\\.0\\.0\\.2 ssh-ed25519 ${key(4)}$`, 'm'));
  assert.match(
    db.read('out/usr/local/etc/homecloud/ssh/authorized_keys/postgres'),
    new RegExp(`^restrict,command="/usr/local/libexec/homecloud/pgbackrest-remote pg store" ssh-ed25519 ${key(3)} `, 'm'),
  );
  assert.match(
    db.read('out/usr/local/etc/homecloud/pgbackrest/pg/store'),
    /^db-main --pg1-path=\/var\/lib\/homecloud-postgres\/main --pg1-port=5433 --pg1-socket-path=\/run\/postgresql$/m,
  );
  assert.equal(db.read('out/usr/local/etc/homecloud/postgres/main/backup.env').split('\n').at(-2), 'STANZA=db-main');

  const store = run({
    machine: 'store',
    fleet: { ...fleet, db: { ...fleet.db, offers: [['postgres-backup', 'store main 5433 6h 3 14']] as [string, string][] } },
  });
  assert.equal(store.result.status, 0, store.result.stderr);
  assert.match(
    store.read('out/usr/local/etc/homecloud/pgbackrest/pgbackrest.conf'),
    /^\[db-main\]\npg1-host=10\.0\.0\.1\npg1-host-user=postgres\n.*\npg1-path=\/var\/lib\/homecloud-postgres\/main\npg1-port=5433\n.*\nrepo1-path=\/var\/lib\/homecloud-pgbackrest\/repository\/db\nrepo1-retention-full=3$/ms,
  );
  assert.match(
    store.read('out/usr/local/etc/homecloud/ssh/authorized_keys/pgbackrest'),
    new RegExp(`^restrict,command="/usr/local/libexec/homecloud/pgbackrest-remote repo db" ssh-ed25519 ${key(1)} `, 'm'),
  );
  assert.match(store.read(`${units}/homecloud-pgbackrest-backup@db-main.timer.d/50-every.conf`), /^OnUnitActiveSec=6h$/m);
  assert.match(store.read(`${units}/homecloud-pgbackrest-backup@db-main.service.d/50-full.conf`), /^Environment=FULL_DAYS=14$/m);
  assert.equal(readlinkSync(join(store.root, units, 'timers.target.wants/homecloud-pgbackrest-backup@db-main.timer')), '../homecloud-pgbackrest-backup@.timer');
});

test('backups that cannot work fail the build, naming the file', () => {
  const fleet = { db: { address: '10.0.0.1' }, store: { address: '10.0.0.2' } };
  const cases: [string, RegExp][] = [
    ['BACKUP_TO=db\n', /main\.conf: BACKUP_TO=db is not another machine of the repository with the postgres layer/],
    ['BACKUP_TO=elsewhere\n', /BACKUP_TO=elsewhere is not another machine/],
    ['BACKUP_TO=store\nBACKUPS=often\n', /BACKUPS=often is not a time span/],
    ['BACKUP_TO=store\nBACKUP_KEEP=0\n', /BACKUP_KEEP=0 is not a number of full backups/],
    ['BACKUP_TO=store\nFULL_BACKUPS=1y\n', /FULL_BACKUPS=1y is not a number of days or weeks/],
    ['BACKUP_TO=store\nREPLICA_OF=store/main\n', /BACKUP_TO= is for a primary/],
  ];
  for (const [declaration, message] of cases) {
    const { result } = run({ files: { [`${clusters}/main.conf`]: declaration }, machine: 'db', fleet });
    assert.equal(result.status, 1, declaration);
    assert.match(result.stderr, message, declaration);
  }
});

test('a VERSION other than the one the cluster holds on the machine (as it published) fails the build, saying what to do; UPGRADE=yes asks for the upgrade', () => {
  const fleet = (holds: string) => ({ h1: { public: { 'postgres-main.version': `${holds}\n` } } });
  const refused = run({ files: { [`${clusters}/main.conf`]: 'VERSION=16\n' }, machine: 'h1', fleet: fleet('15') });
  assert.equal(refused.result.status, 1);
  assert.match(
    refused.result.stderr,
    /main\.conf: VERSION=16, but the cluster main on h1 holds PostgreSQL 15: a major upgrade is a change of its data; UPGRADE=yes asks for it \(.*pg_upgrade --clone.*\), or keep VERSION=15/,
  );
  const same = run({ files: { [`${clusters}/main.conf`]: 'VERSION=15\n' }, machine: 'h1', fleet: fleet('15') });
  assert.equal(same.result.status, 0, same.result.stderr);
  const asked = run({
    files: { [`${clusters}/main.conf`]: 'VERSION=16\nUPGRADE=yes\n' },
    machine: 'h1',
    fleet: fleet('15'),
  });
  assert.equal(asked.result.status, 0, asked.result.stderr);
  assert.match(asked.read(`${units}/homecloud-postgres@main.service.d/50-cluster.conf`), /^Environment=PG_VERSION=16 .* PG_UPGRADE_FROM=15$/m);
  const down = run({
    files: { [`${clusters}/main.conf`]: 'VERSION=14\nUPGRADE=yes\n' },
    machine: 'h1',
    fleet: fleet('15'),
  });
  assert.match(down.result.stderr, /a cluster is never downgraded \(keep VERSION=15\)/);
});

test('a pool in front of the cluster: pgbouncer where the cluster listens, logins looked up in the cluster, TLS over TCP', () => {
  const { result, read, root } = generate({ [`${clusters}/main.conf`]: 'LISTEN=10.0.0.5\nALLOW_FROM=10.0.0.0/24\nPOOL_PORT=6432\nPOOL_MODE=session\n' });
  assert.equal(result.status, 0, result.stderr);
  const ini = read('out/usr/local/etc/homecloud/postgres/main/pgbouncer.ini');
  assert.match(ini, /^\* = host=\/run\/postgresql port=5432$/m);
  assert.match(ini, /^listen_addr = 10\.0\.0\.5\nlisten_port = 6432$/m);
  assert.match(ini, /^auth_query = .* AND passwd IS NOT NULL AND NOT usesuper$/m);
  assert.match(ini, /^pool_mode = session$/m);
  assert.match(ini, /^client_tls_sslmode = require$/m);
  assert.equal(read('out/usr/local/etc/homecloud/postgres/main/pgbouncer.users'), '', 'no user of its own');
  assert.match(read('out/usr/local/etc/nftables/input.d/50-postgres-main.nft'), /^ip saddr 10\.0\.0\.0\/24 tcp dport 6432 accept$/m);
  assert.equal(readlinkSync(join(root, units, 'multi-user.target.wants/homecloud-pgbouncer@main.service')), '../homecloud-pgbouncer@main.service');
  const socketOnly = generate({ [`${clusters}/main.conf`]: 'POOL_PORT=6432\n' });
  assert.match(socketOnly.read('out/usr/local/etc/homecloud/postgres/main/pgbouncer.ini'), /^listen_addr = \nlisten_port = 6432$/m);
  assert.doesNotMatch(socketOnly.read('out/usr/local/etc/homecloud/postgres/main/pgbouncer.ini'), /client_tls/);
  for (const [declaration, message] of [
    ['POOL_PORT=5432\n', /POOL_PORT=5432 is main's too/],
    ['POOL_PORT=6432\nPOOL_MODE=fast\n', /POOL_MODE=fast is not session, transaction or statement/],
    ['POOL_PORT=6432\nPOOL_SIZE=0\n', /POOL_SIZE=0 is not a number of connections/],
  ] as const) {
    const refused = generate({ [`${clusters}/main.conf`]: declaration });
    assert.equal(refused.result.status, 1, declaration);
    assert.match(refused.result.stderr, message);
  }
});

test('two clusters that would back up to one machine as one stanza fail that build, naming both', () => {
  const backup = (cluster: string) => [['postgres-backup', `store ${cluster} 5432 1d 2 7`]] as [string, string][];
  const store = run({
    machine: 'store',
    fleet: { 'a-b': { address: '10.0.0.1', offers: backup('c') }, a: { address: '10.0.0.2', offers: backup('b-c') }, store: {} },
  });
  assert.equal(store.result.status, 1);
  assert.match(
    store.result.stderr,
    /postgres-backups\.env: (a-b's cluster c and a's cluster b-c|a's cluster b-c and a-b's cluster c) back up here as one stanza, a-b-c: rename one of them/,
  );
});
