import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { projectRoot, runCli, writeFiles } from '../helpers/repo.ts';
import { assertMachineIsItsGeneration } from '../helpers/invariant.ts';
import { testSandbox } from '../helpers/sandbox.ts';

const { box, skip } = testSandbox('deploy');
const repo = mkdtempSync(join(tmpdir(), 'homecloud-deploy-'));
after(() => rmSync(repo, { recursive: true, force: true }));
cpSync(join(projectRoot, 'examples/homelab'), repo, { recursive: true, verbatimSymlinks: true, filter: (source) => !source.includes('/var') });
const cli = (args: string[]) => runCli(['-C', repo, '--sandbox', ...args], { env: { HOMECLOUD_SANDBOX: box?.paths.home ?? '' } });
const on = (machine: string, command: string) => box!.ssh(machine, command).stdout;
/** Homecloud's promise on each machine named: exactly its current generation, and healthy. */
const holds = (...machines: string[]) => {
  for (const machine of machines) assertMachineIsItsGeneration(box!, machine);
};
const invocations = (machine: string) => on(machine, 'systemctl show -p Id -p InvocationID hello.service ssh.service systemd-journald.service');

test('the first deploy brings units up; a second deploy sends nothing and touches nothing', { skip }, async () => {
  await box!.up(['gateway', 'nas', 'media']);
  const first = cli(['deploy']);
  assert.equal(first.status, 0, first.stderr + first.stdout);
  assert.match(
    first.stdout,
    /^nas\s+generation 1: \d+ added, 0 changed, 0 removed; start hello\.service, start homecloud-alert\.service, start homecloud-firewall\.service, start homecloud-journal-key\.service, start homecloud-journal-upload\.service, reload ssh\.service, restart systemd-journald\.service, start tick@homecloud\.timer/m,
  );
  // The machines made their journal certificates: a second round brings them to the collector and the shippers.
  assert.match(first.stdout, /^gateway, media, nas published new public material .*: building and deploying again$/m);
  assert.match(first.stdout, /^gateway\s+generation 2: .*start homecloud-journal-remote@media\.socket, start homecloud-journal-remote@nas\.socket/m);
  assert.equal(on('nas', 'systemctl is-active hello.service tick@homecloud.timer'), 'active\nactive');
  assert.equal(on('media', 'cat /usr/local/opt/hello/greeting.txt'), 'The media machine says hi (its own file overrides the layer template).');
  holds('gateway', 'nas', 'media');
  const before = invocations('nas');
  const generations = on('nas', 'cat /var/lib/homecloud/generations/last; ls /var/lib/homecloud/generations');
  const second = cli(['deploy']);
  assert.equal(second.status, 0, second.stderr);
  assert.match(second.stdout, /Nothing to do: every machine is as its tree says\./);
  assert.equal(invocations('nas'), before, 'no unit was restarted');
  assert.equal(on('nas', 'cat /var/lib/homecloud/generations/last; ls /var/lib/homecloud/generations'), generations, 'no new generation');
  assert.doesNotMatch(generations, /staging|pending/, 'no staging left');
  holds('gateway', 'nas', 'media');
});

test('a changed file that a unit binds restarts that unit only', { skip }, () => {
  const before = invocations('nas').split('\n');
  writeFiles(repo, {
    'facts/nas.json':
      '{"ENV_GREETING": "Good night", "ENV_DISKS": ["sda"], "ENV_HELLO_INTERVAL": 30, "ENV_JOURNAL_COLLECTOR": "gateway", "ENV_JOURNAL_COLLECTOR_HOST": "gateway.home.arpa"}',
  });
  const deploy = cli(['deploy']);
  assert.equal(deploy.status, 0, deploy.stderr);
  assert.match(deploy.stdout, /^nas\s+generation \d+: 0 added, 1 changed, 0 removed; restart hello\.service \(/m);
  assert.match(deploy.stdout, /^media\s+nothing to do/m);
  const after = invocations('nas').split('\n');
  const changedIds = after.filter((line, i) => line !== before[i]);
  assert.equal(changedIds.length, 1, 'exactly one invocation changed');
  assert.equal(on('nas', 'head -1 /usr/local/opt/hello/greeting.txt'), 'Good night from nas!');
  holds('nas', 'media');
});

test('removing a layer removes its files, stops its units and restores what was there before', { skip }, () => {
  box!.ssh('gateway', 'echo original > /usr/local/bin/sysinfo.keep');
  // A file homecloud takes over: it existed on the machine before the first deploy of this path.
  box!.ssh('media', 'mkdir -p /usr/local/bin && echo "the machine\'s own" > /usr/local/bin/sysinfo');
  writeFiles(repo, { 'machines/media/usr/local/opt/initd/layers/10-layers.txt': '+ hello\n+ tools\n' });
  assert.equal(cli(['deploy', 'media']).status, 0);
  assert.equal(on('media', 'systemctl is-active tick@homecloud.timer; head -2 /usr/local/bin/sysinfo | tail -1'), 'active\n# One line about this machine.');
  writeFiles(repo, { 'machines/media/usr/local/opt/initd/layers/10-layers.txt': '+ hello\n' });
  const removed = cli(['deploy', 'media']);
  assert.equal(removed.status, 0, removed.stderr);
  assert.match(removed.stdout, /stop tick@homecloud\.timer/);
  assert.equal(
    on('media', 'systemctl is-active tick@homecloud.timer; cat /usr/local/bin/sysinfo; ls /usr/local/lib/systemd/system'),
    "inactive\nthe machine's own\nhello.service\nhomecloud-.service.d\nhomecloud-alert.service\nhomecloud-firewall.service\nmulti-user.target.wants\nsysinit.target.wants",
  );
  holds('media');
});

test("a change that makes a unit fail fails that machine with the unit's journal; the others deploy", { skip }, () => {
  const script = readFileSync(join(repo, 'layers/hello/usr/local/bin/hello'), 'utf8');
  const last = on('nas', 'cat /var/lib/homecloud/generations/last');
  writeFiles(repo, {
    'layers/hello/usr/local/bin/hello': { content: '#!/bin/bash\necho "hello is broken on purpose" >&2\nexit 7\n', mode: 0o755 },
    'machines/gateway/etc/motd.homecloud': 'gateway changed\n',
  });
  try {
    const deploy = cli(['deploy']);
    assert.equal(deploy.status, 1, deploy.stdout + deploy.stderr);
    assert.match(deploy.stdout, /^gateway\s+generation \d+/m);
    assert.match(deploy.stderr, /nas: unhealthy after the change: hello\.service/);
    assert.match(deploy.stderr, /hello is broken on purpose/);
    assert.equal(on('nas', 'cat /var/lib/homecloud/generations/last'), last, 'no generation was committed on nas');
  } finally {
    writeFileSync(join(repo, 'layers/hello/usr/local/bin/hello'), script);
  }
  // What the repair will do is in the plan: the failed unit restarts outright (a try-restart would leave it failed).
  assert.equal(on('nas', 'systemctl is-failed hello.service || true'), 'failed');
  const plan = cli(['plan', 'nas']);
  assert.match(plan.stdout, /^ {2}hello\.service restart: .*; it had failed$/m);
  const planned = JSON.parse(cli(['--json', 'plan', 'nas']).stdout) as {
    machines: { plan: { units: { unit: string; action: string; wasFailed?: boolean }[] } }[];
  };
  const hello = planned.machines[0]!.plan.units.find((u) => u.unit === 'hello.service');
  assert.deepEqual([hello?.action, hello?.wasFailed], ['restart', true]);
  const repaired = cli(['deploy']);
  assert.equal(repaired.status, 0, repaired.stderr);
  assert.equal(on('nas', 'systemctl is-active hello.service'), 'active');
  holds('gateway', 'nas', 'media');
});

test('many changes in a row restart a service each time: a deliberate restart is not held back as a crash loop', { skip }, () => {
  for (let i = 0; i < 7; i++) {
    writeFiles(repo, { 'facts/nas.json': `{"ENV_GREETING": "Hello ${i}"}` });
    const deploy = cli(['deploy', 'nas']);
    assert.equal(deploy.status, 0, `change ${i}: ${deploy.stderr}`);
    assert.match(deploy.stdout, /restart hello\.service/);
  }
  assert.equal(on('nas', 'systemctl is-active hello.service; head -1 /usr/local/opt/hello/greeting.txt'), 'active\nHello 6 from nas!');
  holds('nas');
});

test('plan says what a deploy would do and why, and changes nothing', { skip }, () => {
  writeFiles(repo, { 'facts/nas.json': '{"ENV_GREETING": "Planned"}' });
  const plan = cli(['plan', 'nas']);
  assert.equal(plan.status, 0, plan.stderr);
  assert.match(plan.stdout, /^nas: 0 added, 1 changed, 0 removed$/m);
  assert.match(plan.stdout, /^ {2}~ \/usr\/local\/opt\/hello\/greeting\.txt$/m);
  assert.match(
    plan.stdout,
    /^ {2}hello\.service restart: \/usr\/local\/opt\/hello\/greeting\.txt changed \(in \/usr\/local\/opt\/hello\), which hello\.service reads$/m,
  );
  assert.notEqual(on('nas', 'head -1 /usr/local/opt/hello/greeting.txt'), 'Planned from nas!');
  assert.match(cli(['deploy', 'nas']).stdout, /restart hello\.service/);
  assert.equal(on('nas', 'head -1 /usr/local/opt/hello/greeting.txt'), 'Planned from nas!');
});

test('rollback brings back the generation before, files and unit states, as a new generation', { skip }, () => {
  const listed = JSON.parse(cli(['--json', 'generations', 'nas']).stdout) as { generations: { generation: number; current: boolean }[] };
  const current = listed.generations.find((g) => g.current)!.generation;
  const rollback = cli(['rollback', 'nas']);
  assert.equal(rollback.status, 0, rollback.stderr);
  assert.match(
    rollback.stdout,
    new RegExp(`^nas: generation ${current - 1} is back as generation ${current + 1}: 0 added, 1 changed, 0 removed; restart hello\\.service`, 'm'),
  );
  assert.equal(on('nas', 'systemctl is-active hello.service; head -1 /usr/local/opt/hello/greeting.txt'), 'active\nHello 6 from nas!');
  holds('nas');
  const after = JSON.parse(cli(['--json', 'generations', 'nas']).stdout) as {
    generations: { generation: number; current: boolean; meta: Record<string, string> }[];
  };
  assert.equal(after.generations.find((g) => g.current)?.meta.commit, `rollback to generation ${current - 1}`);
  const missing = cli(['rollback', 'nas', '--to', '999']);
  assert.equal(missing.status, 2);
  assert.match(missing.stderr, /nas has no generation 999/);
  assert.match(cli(['deploy', 'nas']).stdout, /restart hello\.service/);
  assert.equal(on('nas', 'head -1 /usr/local/opt/hello/greeting.txt'), 'Planned from nas!');
});

test('with --rollback-on-failure a failing change is undone: the previous generation is back and healthy', { skip }, () => {
  const script = readFileSync(join(repo, 'layers/hello/usr/local/bin/hello'), 'utf8');
  writeFiles(repo, { 'layers/hello/usr/local/bin/hello': { content: '#!/bin/bash\necho "broken again" >&2\nexit 9\n', mode: 0o755 } });
  try {
    const deploy = cli(['deploy', '--rollback-on-failure', 'nas']);
    assert.equal(deploy.status, 1, 'the deploy still failed');
    assert.match(deploy.stderr, /nas: unhealthy after the change: hello\.service\n {2}rolled back to generation \d+ \(now generation \d+\)/);
    assert.match(deploy.stderr, /broken again/);
    assert.equal(on('nas', 'systemctl is-active hello.service; grep -c broken /usr/local/bin/hello || true'), 'active\n0');
    holds('nas');
  } finally {
    writeFileSync(join(repo, 'layers/hello/usr/local/bin/hello'), script);
  }
});

test('diff shows a hand edit on the machine; a secret never appears in plan, diff, deploy or --json output', { skip }, () => {
  assert.match(cli(['deploy', 'nas']).stdout, /nas/);
  box!.ssh('nas', 'echo "# edited by hand" >> /usr/local/etc/default/hello.env');
  const drift = cli(['diff', 'nas']);
  assert.equal(drift.status, 0, drift.stderr);
  assert.match(drift.stdout, /^--- nas:\/usr\/local\/etc\/default\/hello\.env$/m);
  assert.match(drift.stdout, /^-# edited by hand$/m);

  const secret = 'pa55-w0rd-that-must-not-leak';
  writeFiles(repo, {
    'facts/nas.env': `ENV_TOKEN=${secret}\n`,
    'facts/nas-password.txt': `${secret}\n`,
    'layers/hello/usr/local/etc/hello/token.m4.conf': 'token=ENV_TOKEN\n',
    'machines/nas/usr/local/etc/hello/!password': { link: '../../../../../../facts/nas-password.txt' },
  });
  const outputs = [
    cli(['plan', 'nas']),
    cli(['--json', 'plan', 'nas']),
    cli(['diff', 'nas']),
    cli(['--json', 'diff', 'nas']),
    cli(['deploy', 'nas']),
    cli(['--json', 'deploy', 'nas']),
    cli(['diff', 'nas']),
  ];
  for (const output of outputs) assert.ok(!`${output.stdout}${output.stderr}`.includes(secret), `no secret in: ${output.stdout}${output.stderr}`);
  assert.match(outputs[2]!.stdout, /token\.conf\n\(secret: not on the machine yet; contents are not shown\)/);
  assert.equal(on('nas', 'cat /usr/local/etc/hello/token.conf /usr/local/etc/hello/password'), `token=${secret}\n${secret}`);
  holds('nas');
});

test('clobber leaves exactly the file listing taken before the first deploy', { skip }, async () => {
  await box!.reset('media');
  const listing = () => box!.listing('media');
  box!.ssh('media', 'mkdir -p /usr/local/bin && echo "the machine\'s own" > /usr/local/bin/sysinfo');
  const before = listing();
  writeFiles(repo, { 'machines/media/usr/local/opt/initd/layers/10-layers.txt': '+ hello\n+ tools\n' });
  assert.equal(cli(['deploy', 'media']).status, 0);
  assert.notEqual(listing(), before);
  const refused = cli(['clobber', 'media']);
  assert.equal(refused.status, 2);
  assert.match(refused.stderr, /homecloud clobber --yes media/);
  const clobbered = cli(['clobber', 'media', '--yes']);
  assert.equal(clobbered.status, 0, clobbered.stderr);
  assert.match(clobbered.stdout, /stopped .*hello\.service/);
  assert.equal(listing(), before);
  assert.equal(
    on('media', 'cat /usr/local/bin/sysinfo; systemctl is-active hello.service tick@homecloud.timer; ls /var/lib/homecloud 2>&1 | head -1'),
    "the machine's own\ninactive\ninactive\nls: cannot access '/var/lib/homecloud': No such file or directory",
  );
});

test('unit file changes restart their unit after a daemon-reload; wants links start and stop; package lines take effect', { skip }, () => {
  const id = () => on('nas', 'systemctl show -p InvocationID --value hello.service');
  const first = id();
  const unit = readFileSync(join(repo, 'layers/hello/usr/local/lib/systemd/system/hello.service'), 'utf8');
  writeFiles(repo, { 'layers/hello/usr/local/lib/systemd/system/hello.service': unit.replace('[Service]', '[Service]\nNice=5') });
  const changed = cli(['deploy', 'nas']);
  // (Another file may change with it: the gateway's journal certificate, when an earlier test made a machine anew.)
  assert.match(changed.stdout, /^nas\s+generation \d+: 0 added, \d+ changed, 0 removed; restart hello\.service/m);
  assert.notEqual(id(), first);
  assert.equal(on('nas', 'systemctl show -p Nice --value hello.service'), '5');

  writeFiles(repo, {
    'layers/hello/usr/local/lib/systemd/system/echo.service': '[Service]\nExecStart=/bin/sleep infinity\nDynamicUser=yes\n',
    'layers/hello/usr/local/lib/systemd/system/multi-user.target.wants/echo.service': { link: '../echo.service' },
  });
  assert.match(cli(['deploy', 'nas']).stdout, /start echo\.service/);
  assert.equal(on('nas', 'systemctl is-active echo.service'), 'active');
  rmSync(join(repo, 'layers/hello/usr/local/lib/systemd/system/multi-user.target.wants/echo.service'));
  assert.match(cli(['deploy', 'nas']).stdout, /stop echo\.service/);
  assert.equal(on('nas', 'systemctl is-active echo.service'), 'inactive');

  // The sandbox image keeps the packages it was made from, so apt needs no network to put one back.
  writeFiles(repo, { 'layers/tools/usr/local/opt/initd/packages/tools.txt': '+ jq\n- less\n' });
  assert.equal(cli(['deploy', 'nas']).status, 0);
  const installed = () => on('nas', 'dpkg -s less 2>/dev/null | grep -c "^Status: install ok installed" || true');
  assert.equal(installed(), '0');
  writeFiles(repo, { 'layers/tools/usr/local/opt/initd/packages/tools.txt': '+ jq\n+ less\n' });
  const reinstall = cli(['deploy', 'nas']);
  assert.equal(reinstall.status, 0, reinstall.stderr);
  assert.equal(installed(), '1');
  holds('nas');
});

/** What planning must leave as it was: rsync's absence, homecloud's state, /usr/local, the lock directory, packages and apt's logs, and the file listing. */
const untouched = (machine: string) =>
  [
    on(machine, 'command -v rsync || echo none'),
    on(machine, "LC_ALL=C find /var/lib/homecloud /usr/local /run/homecloud -printf '%p %y %m %u %g %s %T@ %C@\\n' 2>&1 | sort"),
    on(
      machine,
      "dpkg-query -W -f='${db:Status-Abbrev} ${Package} ${Version}\\n' | md5sum; cat /var/log/dpkg.log /var/log/apt/history.log /var/log/apt/term.log 2>/dev/null | md5sum",
    ),
    box!.listing(machine),
  ].join('\n');

test("plan against a machine without rsync changes nothing on it, and lists installing rsync as the deploy's first step", { skip }, async () => {
  await box!.reset('gateway');
  box!.ssh('gateway', 'DEBIAN_FRONTEND=noninteractive apt-get purge -y -q rsync >/dev/null 2>&1');
  const before = untouched('gateway');
  assert.match(before, /^none\n/);
  assert.match(before, /find: '\/var\/lib\/homecloud': No such file or directory/, 'a machine homecloud never deployed to');
  const plan = cli(['plan', 'gateway']);
  assert.equal(plan.status, 0, plan.stderr);
  assert.match(plan.stdout, /^gateway: \d+ added, 0 changed, 0 removed$/m);
  assert.match(plan.stdout, /^ {2}bootstrap: install rsync through apt before the transfer \(the machine has none; deploy does it\)$/m);
  const json = JSON.parse(cli(['--json', 'plan', 'gateway']).stdout) as { machines: { machine: string; plan: { bootstrap: string[] } }[] };
  assert.deepEqual(
    json.machines.map((m) => [m.machine, m.plan.bootstrap]),
    [['gateway', ['rsync']]],
  );
  assert.equal(untouched('gateway'), before, 'planning changed nothing on the machine');
});

test('a machine without rsync gets it through apt before the first transfer', { skip }, async () => {
  if (on('gateway', 'command -v rsync || echo none') !== 'none') {
    await box!.reset('gateway');
    box!.ssh('gateway', 'DEBIAN_FRONTEND=noninteractive apt-get purge -y -q rsync >/dev/null 2>&1');
  }
  assert.equal(on('gateway', 'command -v rsync || echo none'), 'none');
  const deploy = cli(['deploy', 'gateway']);
  assert.equal(deploy.status, 0, deploy.stderr);
  assert.match(deploy.stdout, /^gateway\s+generation 1: .*; installed rsync first/m);
  assert.equal(on('gateway', 'command -v rsync; systemctl is-active tick@homecloud.timer'), '/usr/bin/rsync\nactive');
  holds('gateway');
});

test('watch rebuilds and deploys on save: the changed service restarts within the loop', { skip }, async () => {
  const child = spawn(process.execPath, [join(projectRoot, 'bin/homecloud.cjs'), '-C', repo, '--sandbox', 'watch', 'nas'], {
    env: { ...process.env, HOMECLOUD_SANDBOX: box!.paths.home, NO_COLOR: '1' },
  });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const waitFor = async (pattern: RegExp) => {
    const deadline = Date.now() + 20_000;
    while (!pattern.test(output) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    assert.match(output, pattern);
  };
  try {
    await waitFor(/watching /);
    writeFileSync(join(repo, 'facts/nas.json'), '{"ENV_GREETING": "Watched"}');
    await waitFor(/deployed nas \(nas: restart hello\.service\) in [\d.]+ m?s/);
    assert.equal(on('nas', 'head -1 /usr/local/opt/hello/greeting.txt'), 'Watched from nas!');
  } finally {
    child.kill('SIGINT');
    await new Promise((resolve) => child.once('exit', resolve));
  }
});

test('deploy --json prints one NDJSON event per machine as it finishes, then a summary; --jobs limits the machines at once', { skip }, () => {
  assert.equal(cli(['deploy', 'media']).status, 0, 'media settled first');
  writeFiles(repo, { 'facts/nas.json': '{"ENV_GREETING": "Events"}' });
  const deploy = cli(['--json', '--jobs', '1', 'deploy', 'nas', 'media']);
  assert.equal(deploy.status, 0, deploy.stderr);
  const all = deploy.stdout
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line) as { event: string; machine?: string; phase?: string; deployed?: number; unchanged?: number });
  const phases = all.filter((e) => e.event === 'phase');
  assert.deepEqual(
    phases.filter((e) => e.machine === 'media').map((e) => e.phase),
    ['connect'],
  );
  assert.deepEqual(
    phases.filter((e) => e.machine === 'nas').map((e) => e.phase),
    ['connect', 'transfer', 'apply', 'check', 'packages', 'stop', 'prune', 'files', 'daemon-reload', 'hook', 'units', 'health', 'commit'],
  );
  const events = all.filter((e) => e.event !== 'phase');
  assert.deepEqual(
    events.map((e) => [e.event, e.machine]).sort(),
    [
      ['deployed', 'nas'],
      ['summary', undefined],
      ['unchanged', 'media'],
    ].sort(),
  );
  assert.deepEqual(events.at(-1), { event: 'summary', deployed: 1, unchanged: 1, failed: 0 });
  holds('nas', 'media');
  const bad = cli(['--jobs', '0', 'deploy', 'nas']);
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /--jobs takes a whole number of at least 1/);
});

test('a changed template unit restarts its running instances only; an initd Makefile runs on the machine at each apply', { skip }, () => {
  const ids = () => on('nas', 'systemctl show -p InvocationID --value tick@homecloud.timer hello.service').split('\n');
  const [timer, hello] = ids();
  const path = join(repo, 'layers/tools/usr/local/lib/systemd/system/tick@.timer');
  writeFileSync(path, readFileSync(path, 'utf8').replace('OnCalendar=*:0/5', 'OnCalendar=*:0/10'));
  writeFiles(repo, { 'machines/nas/usr/local/opt/initd/Makefile': 'all:\n\techo ran >> /var/lib/initd-hook.log\n' });
  assert.match(cli(['plan', 'nas']).stdout, /^ {2}run hook: \/usr\/local\/opt\/initd\/Makefile \(added\)$/m);
  const deploy = cli(['deploy', 'nas']);
  assert.equal(deploy.status, 0, deploy.stderr);
  assert.match(deploy.stdout, /^nas\s+generation \d+: 1 added, 1 changed, 0 removed; restart tick@\*\.timer/m);
  const [timerAfter, helloAfter] = ids();
  assert.notEqual(timerAfter, timer, 'the running instance restarted');
  assert.equal(helloAfter, hello, 'other units kept running');
  assert.match(on('nas', 'systemctl show -p TimersCalendar --value tick@homecloud.timer'), /OnCalendar=\*-\*-\* \*:00\/10:00/);
  assert.equal(on('nas', 'cat /var/lib/initd-hook.log'), 'ran');
  holds('nas');
  // Every apply runs it, as the plan says; with nothing to do there is no apply, and no hook.
  writeFiles(repo, { 'facts/nas.json': '{"ENV_GREETING": "Hooked"}' });
  assert.match(cli(['plan', 'nas']).stdout, /^ {2}run hook: \/usr\/local\/opt\/initd\/Makefile \(present: every apply runs it\)$/m);
  assert.equal(cli(['deploy', 'nas']).status, 0);
  assert.equal(on('nas', 'cat /var/lib/initd-hook.log'), 'ran\nran');
  assert.doesNotMatch(cli(['plan', 'nas']).stdout, /run hook/);
  assert.equal(cli(['deploy', 'nas']).status, 0);
  assert.equal(on('nas', 'cat /var/lib/initd-hook.log'), 'ran\nran');
});
