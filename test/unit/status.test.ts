// `homecloud status`: the status part of the machine's script, parsed strictly; what needs attention; the table.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, test } from 'node:test';
import { createColors } from '../../src/report/colors.ts';
import { HomecloudError } from '../../src/load/errors.ts';
import {
  attentionOf,
  bytes,
  duration,
  generationText,
  parseStatus,
  statusJson,
  statusScript,
  statusText,
  unknownStatus,
  type MachineStatus,
} from '../../src/report/status.ts';
import { projectRoot } from '../helpers/repo.ts';

// Deploy dates are shown in local time: this file's is UTC.
process.env.TZ = 'UTC';
const scratch = mkdtempSync(join(tmpdir(), 'homecloud-status-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

/** dpkg-query and apt-cache as a machine's (the host's own are slow and say what the host has), first on the PATH. */
const bin = join(scratch, 'bin');
mkdirSync(bin);
writeFileSync(join(bin, 'dpkg-query'), "#!/bin/sh\nprintf '%s\\n' bash:amd64 gzip:amd64 less:amd64 old-lib:amd64 tzdata:all\n", { mode: 0o755 });
const aptFails = '#!/bin/sh\necho "E: the cache is broken" >&2\nexit 100\n';

/** The status script's lines, run here on `root` (HOMECLOUD_ROOT) with `probe` in front and `aptCache` as apt-cache. */
function runStatus(root: string, probe: string, aptCache = aptFails): string[] {
  writeFileSync(join(bin, 'apt-cache'), aptCache, { mode: 0o755 });
  const result = spawnSync('bash', ['-c', statusScript(probe)], {
    env: { ...process.env, HOMECLOUD_ROOT: root, PATH: `${bin}:${process.env.PATH}` },
    encoding: 'utf8',
  });
  assert.equal(result.status, 0, result.stderr);
  return result.stdout.split('\n');
}

function shellcheck(script: string, ...files: string[]): string {
  const result = spawnSync('shellcheck', ['-s', 'bash', ...(files.length ? files : ['-'])], { input: script, encoding: 'utf8' });
  if (result.error) throw new Error(`shellcheck is missing (scripts/setup-host.sh installs it): ${result.error.message}`);
  return result.stdout;
}

const clear: MachineStatus = {
  machine: 'a',
  reachable: true,
  generation: { number: 4, date: '2026-12-02T10:31:07.123Z', by: 'alice', commit: '' },
  failedUnits: [],
  drift: [],
  pendingApply: false,
  rebootRequired: false,
  rebootPackages: [],
  uptimeSeconds: 3 * 86400 + 4 * 3600 + 5,
  disk: { usedPercent: 37, availableBytes: 12.5 * 2 ** 30 },
  upgrades: 12,
};

test('the status script passes shellcheck, as generated and as written', () => {
  assert.equal(shellcheck(statusScript('echo probe')), '');
  assert.equal(shellcheck('', join(projectRoot, 'src/report/status.bash')), '');
});

test('the status script reads the generation, its meta, the reboot flag and what is on /; what it reads is data, never run', () => {
  const root = join(scratch, 'root');
  const write = (path: string, text: string) => {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), text);
  };
  const marker = join(scratch, 'ran');
  const run = (probe: string) => runStatus(root, probe);
  mkdirSync(root, { recursive: true });
  // Never deployed, nothing to reboot for: no such lines. The probe runs first, and its exit ends only itself.
  const bare = run('echo HC_PROBED=yes; exit 0');
  assert.equal(bare[0], 'HC_PROBED=yes');
  assert.deepEqual(
    bare.filter((line) => /^HC_STATUS_(GENERATION|META|REBOOT)/.test(line)),
    [],
  );
  const reading = parseStatus(bare);
  assert.equal(reading.generation, null);
  assert.equal(reading.rebootRequired, false);
  assert.ok(reading.uptimeSeconds! > 0);
  assert.ok(reading.disk!.usedPercent >= 0 && reading.disk!.usedPercent <= 100);
  // Deployed, a reboot asked for; every file holds what a hostile machine could write there.
  write('var/lib/homecloud/generations/7/meta', `date=2026-12-02T10:31:07.123Z\nby=$(touch ${marker})\ncommit=\`touch ${marker}\`\nHC_STATUS_GENERATION=99`);
  symlinkSync('7', join(root, 'var/lib/homecloud/generations/current'));
  write('run/reboot-required', '');
  write('run/reboot-required.pkgs', `libc6\n$(touch ${marker})\n\u001b[31mred\nlibc6\nlast-without-newline`);
  const lines = run('exit 3');
  assert.deepEqual(
    lines.filter((line) => /^HC_STATUS_(GENERATION|META|REBOOT)/.test(line)),
    [
      'HC_STATUS_GENERATION=7',
      'HC_STATUS_META=date=2026-12-02T10:31:07.123Z',
      `HC_STATUS_META=by=$(touch ${marker})`,
      `HC_STATUS_META=commit=\`touch ${marker}\``,
      'HC_STATUS_META=HC_STATUS_GENERATION=99',
      'HC_STATUS_REBOOT=yes',
      'HC_STATUS_REBOOT_PACKAGE=libc6',
      `HC_STATUS_REBOOT_PACKAGE=$(touch ${marker})`,
      'HC_STATUS_REBOOT_PACKAGE=\u001b[31mred',
      'HC_STATUS_REBOOT_PACKAGE=libc6',
      'HC_STATUS_REBOOT_PACKAGE=last-without-newline',
    ],
  );
  assert.equal(existsSync(marker), false);
  const read = parseStatus(lines);
  assert.deepEqual(read.generation, { number: 7, date: '2026-12-02T10:31:07.123Z', by: `$(touch ${marker})`, commit: `\`touch ${marker}\`` });
  // Control characters are not shown (the escape that starts a color here).
  assert.deepEqual(read.rebootPackages, ['libc6', `$(touch ${marker})`, '[31mred', 'last-without-newline']);
});

test('pending upgrades: installed packages whose candidate is newer, as apt-cache policy lists them, kept until apt or dpkg change; none said when apt fails', () => {
  // dpkg-query and apt-cache as on a machine: bash has a newer candidate (an epoch), gzip an older one, less the
  // installed one; old-lib is not installed (config files left), tzdata's candidate is newer.
  const policy = [
    'bash:',
    '  Installed: 5.2.15-2+b13',
    '  Candidate: 9:5.2.15-2+b13',
    '  Version table:',
    '     9:5.2.15-2+b13 500',
    '        500 file:/srv/repo ./ Packages',
    ' *** 5.2.15-2+b13 500',
    '        500 http://deb.debian.org/debian bookworm/main amd64 Packages',
    '        100 /var/lib/dpkg/status',
    'gzip:',
    '  Installed: 1.12-1',
    '  Candidate: 1.12-1',
    '  Version table:',
    ' *** 1.12-1 500',
    '        100 /var/lib/dpkg/status',
    '     0.1 500',
    '        500 file:/srv/repo ./ Packages',
    'less:',
    '  Installed: 590-2.1~deb12u2',
    '  Candidate: 590-2.1~deb12u2',
    '  Version table:',
    ' *** 590-2.1~deb12u2 500',
    '        100 /var/lib/dpkg/status',
    'old-lib:',
    '  Installed: (none)',
    '  Candidate: 2.0',
    '  Version table:',
    '     2.0 500',
    '        500 http://deb.debian.org/debian bookworm/main amd64 Packages',
    'tzdata:',
    '  Installed: 2024a-0+deb12u1',
    '  Candidate: 2026b-0+deb12u1',
    '  Version table:',
    '     2026b-0+deb12u1 500',
    '        500 http://deb.debian.org/debian bookworm/main amd64 Packages',
    ' *** 2024a-0+deb12u1 100',
    '        100 /var/lib/dpkg/status',
  ].join('\n');
  const root = join(scratch, 'apt-root');
  for (const dir of ['var/lib/dpkg', 'run']) mkdirSync(join(root, dir), { recursive: true });
  const upgradesWith = (aptCache: string) => parseStatus(runStatus(root, 'exit 0', aptCache)).upgrades;
  const policyFile = join(scratch, 'policy');
  writeFileSync(policyFile, policy + '\n');
  const apt = `#!/bin/sh\n[ "$*" = 'policy bash:amd64 gzip:amd64 less:amd64 old-lib:amd64 tzdata:all' ] || exit 9\ncat '${policyFile}'\n`;
  assert.equal(upgradesWith(apt), 2);
  // Kept: while dpkg's status and apt's lists and configuration stay as they were, apt does not run again.
  assert.equal(upgradesWith(aptFails), 2);
  const kept = join(root, 'run/homecloud/upgrades');
  assert.match(readFileSync(kept, 'utf8'), /^2\n/);
  // dpkg installed something: counted again (apt fails now: no count), and again once apt answers.
  writeFileSync(join(root, 'var/lib/dpkg/status'), 'Package: bash\n');
  assert.equal(upgradesWith(aptFails), null);
  assert.equal(upgradesWith(apt), 2);
  mkdirSync(join(root, 'var/lib/apt/lists'), { recursive: true });
  writeFileSync(join(root, 'var/lib/apt/lists/deb.debian.org_debian_dists_bookworm_main_binary-amd64_Packages'), '');
  assert.equal(upgradesWith(aptFails), null);
  // What the kept file holds is data: a count or nothing.
  const marker = join(scratch, 'ran-upgrades');
  writeFileSync(kept, `$(touch ${marker})\n${readFileSync(kept, 'utf8').split('\n').slice(1).join('\n')}`);
  assert.equal(upgradesWith(aptFails), null);
  assert.equal(existsSync(marker), false);
});

test('status lines are parsed strictly: a value that is not what it should be is an error naming the line', () => {
  const reading = parseStatus([
    'ENV_HOSTNAME=a',
    'HC_FAILED_UNITS=x.service loaded failed failed x',
    'HC_STATUS_GENERATION=12',
    'HC_STATUS_META=date=2026-12-02T10:31:07Z',
    'HC_STATUS_META=by=bob=builder',
    'HC_STATUS_META=by=second',
    'HC_STATUS_META=no equals sign',
    'HC_STATUS_UPTIME=93784.55',
    'HC_STATUS_DISK=1000 100 50 4096',
    'HC_STATUS_UPGRADES=0',
    'HC_STATUS_FUTURE=ignored',
  ]);
  assert.deepEqual(reading, {
    generation: { number: 12, date: '2026-12-02T10:31:07Z', by: 'bob=builder', commit: '' },
    rebootRequired: false,
    rebootPackages: [],
    uptimeSeconds: 93784,
    // As df: 900 used of the 950 a user may use, rounded up.
    disk: { usedPercent: 95, availableBytes: 50 * 4096 },
    upgrades: 0,
  });
  // A file system with nothing used, and one whose reserved blocks are all that is left.
  assert.deepEqual(parseStatus(['HC_STATUS_DISK=1000 1000 1000 512']).disk, { usedPercent: 0, availableBytes: 512000 });
  assert.deepEqual(parseStatus(['HC_STATUS_DISK=1000 50 0 4096']).disk, { usedPercent: 100, availableBytes: 0 });
  for (const [line, message] of [
    ['HC_STATUS_GENERATION=12; reboot', /HC_STATUS_GENERATION is not a generation number: "12; reboot"/],
    ['HC_STATUS_UPTIME=-5', /HC_STATUS_UPTIME is not a number of seconds/],
    ['HC_STATUS_UPTIME=', /HC_STATUS_UPTIME is not a number of seconds: ""/],
    ['HC_STATUS_DISK=1000 100 50', /HC_STATUS_DISK is not four block counts/],
    ['HC_STATUS_DISK=1000 2000 50 4096', /HC_STATUS_DISK is not four block counts/],
    ['HC_STATUS_DISK=1000 100 500 4096', /HC_STATUS_DISK is not four block counts/],
    ['HC_STATUS_UPGRADES=many', /HC_STATUS_UPGRADES is not a count of packages: "many"/],
    ['HC_STATUS_UPGRADES=1\u001b[2J', /HC_STATUS_UPGRADES is not a count of packages: "1 \[2J"/],
  ] as const) {
    assert.throws(
      () => parseStatus([line]),
      (error: unknown) => error instanceof HomecloudError && message.test(error.message),
      line,
    );
  }
});

test('what needs attention: unreachable, a read that failed, failed units, an uncommitted apply, drift, a reboot, a full disk; not upgrades', () => {
  assert.deepEqual(attentionOf(clear), []);
  assert.deepEqual(attentionOf({ ...clear, upgrades: 300, generation: null }), []);
  assert.deepEqual(attentionOf({ ...clear, disk: { usedPercent: 89, availableBytes: 0 } }), []);
  const everything: MachineStatus = {
    ...clear,
    failedUnits: ['x.service', 'y@\u001b[31m.service'],
    pendingApply: true,
    drift: [{ path: '/usr/local/etc/x.conf', kinds: ['content'], detail: 'content edited' }],
    rebootRequired: true,
    rebootPackages: ['libc6', 'linux-image-amd64'],
    disk: { usedPercent: 90, availableBytes: 1.5 * 2 ** 30 },
  };
  assert.deepEqual(attentionOf(everything), [
    { text: 'x.service is failed', severe: true },
    { text: 'y@ [31m.service is failed', severe: true },
    { text: 'an apply did not commit (it failed, was cut off, or runs now): deploy does it again', severe: false },
    { text: '/usr/local/etc/x.conf: content edited (changed on the machine; restored by deploy)', severe: false },
    { text: 'reboot required by libc6, linux-image-amd64', severe: false },
    { text: 'disk of / 90% used, 1.5 GiB free', severe: true },
  ]);
  const down = unknownStatus('b', false, new HomecloudError('cannot reach 10.0.0.2: ssh: connect to host 10.0.0.2 port 22: No route to host\nmore'));
  assert.deepEqual(attentionOf(down), [{ text: 'unreachable: cannot reach 10.0.0.2: ssh: connect to host 10.0.0.2 port 22: No route to host', severe: true }]);
  const unread = unknownStatus('c', true, new HomecloudError('10.0.0.3 runs without systemd'));
  assert.deepEqual(attentionOf(unread), [{ text: 'cannot read its status: 10.0.0.3 runs without systemd', severe: true }]);
});

test('--json: every field, the error in the one error shape, and what needs attention in words', () => {
  assert.deepEqual(statusJson(clear), { ...clear, attention: [] });
  const down = statusJson(unknownStatus('b', false, new HomecloudError('cannot reach b', undefined, undefined, { machine: 'b', phase: 'connect' })));
  assert.deepEqual(down, {
    machine: 'b',
    reachable: false,
    error: { machine: 'b', phase: 'connect', message: 'cannot reach b', file: undefined, line: undefined, column: undefined, hint: undefined },
    generation: null,
    failedUnits: [],
    drift: [],
    pendingApply: false,
    rebootRequired: false,
    rebootPackages: [],
    uptimeSeconds: null,
    disk: null,
    upgrades: null,
    attention: ['unreachable: cannot reach b'],
  });
});

test('the table: a row per machine, what needs attention indented under it, in color on a terminal', () => {
  const statuses: MachineStatus[] = [
    clear,
    {
      ...clear,
      machine: 'b',
      generation: { number: 12, date: '2026-11-30T08:00:00Z', by: 'ci\u001b[2J', commit: 'abc' },
      failedUnits: ['hello.service'],
      drift: [{ path: '/usr/local/opt/x', kinds: ['mode'], detail: 'mode 0600 instead of 0644' }],
      rebootRequired: true,
      uptimeSeconds: 42,
      disk: { usedPercent: 93, availableBytes: 700 * 2 ** 20 },
      upgrades: null,
    },
    { ...clear, machine: 'fresh', generation: null, uptimeSeconds: 3600 * 5 + 60 * 12, upgrades: 0 },
    unknownStatus('c', false, new HomecloudError('cannot reach 10.0.0.3: ssh: connect to host 10.0.0.3 port 22: No route to host')),
    unknownStatus('d', true, new HomecloudError('10.0.0.4 runs without systemd')),
  ];
  const plain = createColors(false);
  assert.equal(
    statusText(statuses, plain),
    [
      'MACHINE  STATE        GENERATION                    FAILED  DRIFT  REBOOT  UP      DISK                UPGRADES',
      'a        ok           4, 2026-12-02 10:31, alice    0       0      no      3d 4h   37% (13 GiB free)   12',
      'b        ATTENTION    12, 2026-11-30 08:00, ci [2J  1       1      yes     42s     93% (700 MiB free)  ?',
      '  hello.service is failed',
      '  /usr/local/opt/x: mode 0600 instead of 0644 (changed on the machine; restored by deploy)',
      '  reboot required',
      '  disk of / 93% used, 700 MiB free',
      'fresh    ok           none                          0       0      no      5h 12m  37% (13 GiB free)   0',
      'c        unreachable',
      '  unreachable: cannot reach 10.0.0.3: ssh: connect to host 10.0.0.3 port 22: No route to host',
      'd        ATTENTION',
      '  cannot read its status: 10.0.0.4 runs without systemd',
    ].join('\n'),
  );
  const colored = statusText(statuses, createColors(true));
  assert.ok(colored.includes(`  ${createColors(true).red('hello.service is failed')}`));
  assert.ok(colored.includes(createColors(true).yellow('ATTENTION')));
  assert.ok(colored.includes(createColors(true).red('93% (700 MiB free)')));
  // Colors take no room: the columns line up as without them.
  assert.equal(colored.replace(/\u001b\[\d+m/g, ''), statusText(statuses, plain));
});

test('durations, sizes and deploy dates in short words', () => {
  assert.deepEqual([0, 59, 60, 3599, 3600, 86399, 86400, 10 * 86400 + 3 * 3600].map(duration), [
    '0s',
    '59s',
    '1m',
    '59m',
    '1h 0m',
    '23h 59m',
    '1d 0h',
    '10d 3h',
  ]);
  assert.deepEqual([0, 1023, 1024, 1536, 10 * 2 ** 20, 2 ** 40 * 3.25].map(bytes), ['0 B', '1023 B', '1.0 KiB', '1.5 KiB', '10 MiB', '3.3 TiB']);
  assert.equal(generationText({ number: 3, date: 'yesterday\u0007', by: '', commit: '' }), '3, yesterday');
  assert.equal(generationText({ number: 3, date: '', by: 'root', commit: '' }), '3, root');
});
