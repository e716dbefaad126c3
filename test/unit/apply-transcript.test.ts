import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, test } from 'node:test';
import { clobberScript } from '../../src/apply/clobber.ts';
import { applyPhases, applyScript, listFiles, readApplyOutput, recordStateScript, type ApplyOutcome } from '../../src/apply/script.ts';
import { lockScript } from '../../src/apply/session.ts';
import { generationsDir, originalsDir, pendingFile } from '../../src/apply/target-paths.ts';
import type { Manifest, ManifestEntries } from '../../src/build/manifest.ts';
import { keyValues, probeScript } from '../../src/facts/probe.ts';
import { planDeploy, type DeployPlan } from '../../src/plan/deploy-plan.ts';
import { unitOf, wantedUnit } from '../../src/plan/units.ts';

/**
 * The scripts homecloud runs on targets, run for real against a scratch root
 * (HOMECLOUD_ROOT), without root: systemctl, apt-get, rsync, journalctl,
 * make, chown and their kind are stubs on PATH that append their arguments
 * to a transcript and answer from a small state (which units run, which
 * crash when started). The tests assert the transcript, as pyinfra asserts
 * the commands of an operation. The nspawn tests (test/e2e) keep what only a
 * real systemd shows.
 */

/** One stub for every command: its name says which. Units are files in $STUB_STATE/units holding their state. */
const stub = String.raw`#!/bin/bash
name=${'$'}{0##*/}
if [[ $name != sleep ]]; then { printf '%s' "$name"; printf ' %s' "$@"; echo; } >> "$TRANSCRIPT"; fi
units=$STUB_STATE/units
state() { cat "$units/$1" 2>/dev/null || echo inactive; }
set_state() { echo "$2" > "$units/$1"; }
# A unit listed in $STUB_STATE/crash fails right after it starts, as a crashing service does.
run() { if [[ -e $STUB_STATE/crash/$1 ]]; then set_state "$1" failed; else set_state "$1" active; fi; }
case $name in
  systemctl)
    props=() states='' args=()
    while (($#)); do
      case $1 in
        -p) props+=("$2"); shift 2 ;;
        --state=*) states=,${'$'}{1#--state=}, ; shift ;;
        -*) shift ;;
        *) args+=("$1"); shift ;;
      esac
    done
    command=${'$'}{args[0]:-} units_named=("${'$'}{args[@]:1}")
    case $command in
      stop) for unit in "${'$'}{units_named[@]}"; do set_state "$unit" inactive; done ;;
      start) for unit in "${'$'}{units_named[@]}"; do [[ $(state "$unit") == active ]] || run "$unit"; done ;;
      restart) for unit in "${'$'}{units_named[@]}"; do run "$unit"; done ;;
      try-restart | try-reload-or-restart) for unit in "${'$'}{units_named[@]}"; do if [[ $(state "$unit") == active ]]; then run "$unit"; fi; done ;;
      reset-failed)
        if ((${'$'}{#units_named[@]} == 0)); then units_named=(); for file in "$units"/*; do [[ -e $file ]] && units_named+=("${'$'}{file##*/}"); done; fi
        for unit in "${'$'}{units_named[@]}"; do if [[ $(state "$unit") == failed ]]; then set_state "$unit" inactive; fi; done ;;
      show)
        for prop in "${'$'}{props[@]}"; do
          case $prop in
            ActiveState) value=$(state "${'$'}{units_named[0]}") ;;
            Type) value=$(cat "$STUB_STATE/types/${'$'}{units_named[0]}" 2>/dev/null || echo simple) ;;
            Version) value=252.22-1~deb12u1 ;;
            NFailedUnits) value=$(grep -lx failed "$units"/* 2>/dev/null | wc -l) ;;
            *) value='' ;;
          esac
          if ((${'$'}{#units_named[@]})); then echo "$value"; else echo "$prop=$value"; fi
        done ;;
      list-units)
        for file in "$units"/*; do
          [[ -e $file ]] || continue
          if [[ $states == *,$(cat "$file"),* ]]; then echo "${'$'}{file##*/} loaded $(cat "$file") running stub"; fi
        done ;;
      status) echo "x ${'$'}{units_named[0]} - stub"; echo "     Active: $(state "${'$'}{units_named[0]}")" ;;
    esac ;;
  journalctl) while (($#)); do if [[ $1 == -u ]]; then echo "$2: what it logged"; fi; shift; done ;;
  dpkg-query) printf '%s ' installed=dpkg=amd64 installed=less=all ;;
  # The real rsync, which places files; ownership is root's business (--chown needs root).
  rsync) args=(); for arg in "$@"; do [[ $arg == --chown=* ]] || args+=("$arg"); done; exec "$REAL_RSYNC" "${'$'}{args[@]}" ;;
esac
exit 0
`;
const stubbed = ['systemctl', 'journalctl', 'apt-get', 'dpkg-query', 'rsync', 'make', 'chown', 'sleep', 'ip'];
const realRsync = spawnSync('bash', ['-c', 'command -v rsync'], { encoding: 'utf8' }).stdout.trim();

type Item = string | { content: string; mode: number } | { link: string } | { dir: number };
/** A tree as the build makes it: absolute paths (their parent directories come by themselves). */
type Tree = Record<string, Item>;

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');
const octal = (mode: number) => mode.toString(8).padStart(4, '0');

function manifestOf(tree: Tree, packages: Manifest['packages'] = { install: [], purge: [] }): Manifest {
  const entries: ManifestEntries = {};
  for (const [path, item] of Object.entries(tree)) {
    for (let dir = dirname(path); dir !== '/'; dir = dirname(dir)) entries[dir] ??= { type: 'dir', mode: '0755' };
    if (typeof item === 'string') entries[path] = { type: 'file', mode: '0644', sha256: sha256(item) };
    else if ('content' in item) entries[path] = { type: 'file', mode: octal(item.mode), sha256: sha256(item.content) };
    else if ('link' in item) entries[path] = { type: 'link', target: item.link };
    else entries[path] = { type: 'dir', mode: octal(item.dir) };
  }
  return { format: 1, machine: 'm', entries: Object.fromEntries(Object.entries(entries).sort(([a], [b]) => (a < b ? -1 : 1))), packages };
}

/** Write a tree under a directory, as rsync would place it. */
function writeTree(base: string, tree: Tree): void {
  for (const [path, item] of Object.entries(tree)) {
    const at = join(base, path);
    mkdirSync(dirname(at), { recursive: true });
    if (typeof item === 'string') writeFileSync(at, item);
    else if ('content' in item) {
      writeFileSync(at, item.content);
      chmodSync(at, item.mode);
    } else if ('link' in item) symlinkSync(item.link, at);
    else {
      mkdirSync(at, { recursive: true });
      chmodSync(at, item.dir);
    }
  }
}

interface Applied {
  status: number | null;
  stdout: string;
  stderr: string;
  outcome: ApplyOutcome;
  plan: DeployPlan;
  /** What the stubs were asked, a line each. */
  transcript: string[];
}

/** A machine in a scratch directory: its root, the stubs, and what units run. */
class Scratch {
  readonly dir = mkdtempSync(join(tmpdir(), 'homecloud-transcript-'));
  readonly root = join(this.dir, 'root');
  private readonly bin = join(this.dir, 'bin');
  private readonly state = join(this.dir, 'state');
  private readonly transcriptFile = join(this.dir, 'transcript');
  private readonly env: NodeJS.ProcessEnv;

  constructor() {
    for (const dir of ['units', 'crash', 'types']) mkdirSync(join(this.state, dir), { recursive: true });
    mkdirSync(this.bin);
    for (const name of stubbed) writeFileSync(join(this.bin, name), stub, { mode: 0o755 });
    // What a Debian machine has before homecloud comes.
    for (const dir of ['etc', 'usr/local/bin', 'usr/local/lib', 'var/lib', 'run/systemd/system']) mkdirSync(join(this.root, dir), { recursive: true });
    writeFileSync(join(this.root, 'etc/os-release'), 'ID=debian\nVERSION_ID="12"\nVERSION_CODENAME=bookworm\n');
    this.env = {
      ...process.env,
      PATH: `${this.bin}:${process.env.PATH}`,
      HOMECLOUD_ROOT: this.root,
      TRANSCRIPT: this.transcriptFile,
      STUB_STATE: this.state,
      REAL_RSYNC: realRsync,
    };
  }

  /** Set a unit's state: active, failed or inactive. */
  unit(unit: string, state: 'active' | 'failed' | 'inactive'): void {
    writeFileSync(join(this.state, 'units', unit), `${state}\n`);
  }

  unitState(unit: string): string {
    return existsSync(join(this.state, 'units', unit)) ? readFileSync(join(this.state, 'units', unit), 'utf8').trim() : 'inactive';
  }

  /** The unit fails each time it starts from now on. */
  crashes(unit: string): void {
    writeFileSync(join(this.state, 'crash', unit), '');
  }

  path(path: string): string {
    return join(this.root, path);
  }

  read(path: string): string {
    return readFileSync(this.path(path), 'utf8');
  }

  /** The last committed generation's manifest, as the probe would send it. */
  committed(): Manifest | undefined {
    const file = this.path(`${generationsDir}/current/manifest.json`);
    return existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as Manifest) : undefined;
  }

  /** Run a script as a target runs it; the transcript is what the stubs were asked meanwhile. */
  run(script: string): { status: number | null; stdout: string; stderr: string; transcript: string[] } {
    rmSync(this.transcriptFile, { force: true });
    const file = join(this.dir, 'run.sh');
    writeFileSync(file, script);
    const result = spawnSync('bash', [file], { env: this.env, encoding: 'utf8', input: '' });
    const transcript = existsSync(this.transcriptFile) ? readFileSync(this.transcriptFile, 'utf8').split('\n').filter(Boolean) : [];
    return { status: result.status, stdout: result.stdout, stderr: result.stderr, transcript };
  }

  /** Plan `tree` against the last committed generation, transfer it into the staging generation (as deploy does) and apply it. */
  deploy(tree: Tree, options: { failedUnits?: string[]; install?: string[]; purge?: string[] } = {}): Applied {
    const committed = this.committed();
    const next = manifestOf(tree, { install: options.install ?? [], purge: options.purge ?? [] });
    const read = (path: string) => {
      const item = tree[path];
      return typeof item === 'string' ? item : item && 'content' in item ? item.content : '';
    };
    const packageWork = { install: options.install ?? [], purge: options.purge ?? [] };
    const plan = planDeploy({
      committed,
      live: committed?.entries ?? {},
      drift: [],
      pending: existsSync(this.path(pendingFile)),
      next,
      read,
      triggers: [],
      failedUnits: options.failedUnits ?? [],
      rsync: true,
      packageWork,
    });
    const staging = this.path(`${generationsDir}/staging`);
    rmSync(staging, { recursive: true, force: true });
    mkdirSync(join(staging, 'tree'), { recursive: true });
    writeTree(join(staging, 'tree'), tree);
    writeFileSync(join(staging, 'manifest.json'), JSON.stringify(next));
    mkdirSync(join(staging, 'lists'));
    for (const [name, text] of Object.entries(listFiles(plan))) writeFileSync(join(staging, 'lists', name), text);
    const managedUnits = [
      ...new Set(
        Object.keys(next.entries)
          .flatMap((path) => [unitOf(path)?.unit, wantedUnit(path)])
          .filter((unit) => unit !== undefined),
      ),
    ];
    const ran = this.run(applyScript({ plan, ...packageWork, managedUnits, keep: 5, meta: { date: 'now', commit: "it's a test" } }));
    return { ...ran, plan, outcome: readApplyOutput(ran.stdout) };
  }

  remove(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** The systemctl calls that change a unit or systemd, in order (not the questions). */
const unitCalls = (transcript: string[]) =>
  transcript
    .filter((line) => line.startsWith('systemctl ') && !/^systemctl (show|list-units|status) /.test(line))
    .map((line) => line.slice('systemctl '.length));

const scratches: Scratch[] = [];
const scratch = () => {
  const made = new Scratch();
  scratches.push(made);
  return made;
};
after(() => {
  for (const made of scratches) made.remove();
});

const units = '/usr/local/lib/systemd/system';
const service = (body: string) => `[Service]\n${body}\n`;
/** A machine with three running services, deployed once. */
function deployedMachine(): { machine: Scratch; tree: Tree } {
  const machine = scratch();
  const tree: Tree = {
    [`${units}/a.service`]: service('ExecStart=/usr/local/bin/a'),
    [`${units}/c.service`]: service('ExecStart=/usr/local/bin/c /usr/local/etc/c.conf\nExecReload=/bin/kill -HUP $MAINPID'),
    [`${units}/old.service`]: service('ExecStart=/bin/true'),
    '/usr/local/bin/a': { content: '#!/bin/sh\n', mode: 0o755 },
    '/usr/local/bin/c': { content: '#!/bin/sh\n', mode: 0o755 },
    '/usr/local/etc/c.conf': 'one\n',
  };
  const first = machine.deploy(tree);
  assert.equal(first.status, 0, first.stderr);
  assert.equal(first.outcome.generation, 1);
  for (const unit of ['a.service', 'c.service', 'old.service']) machine.unit(unit, 'active');
  return { machine, tree };
}

test('a first apply places the tree, makes its directories and commits generation 1 through every phase', () => {
  const machine = scratch();
  const applied = machine.deploy({
    '/usr/local/etc/x/conf': { content: 'x\n', mode: 0o600 },
    '/usr/local/etc/private': { dir: 0o700 },
    '/usr/local/bin/link': { link: '../etc/x/conf' },
  });
  assert.equal(applied.status, 0, applied.stderr);
  assert.deepEqual(applied.outcome.phases, [...applyPhases]);
  assert.equal(applied.outcome.generation, 1);
  assert.equal(machine.read('/usr/local/etc/x/conf'), 'x\n');
  assert.equal(lstatSync(machine.path('/usr/local/etc/x/conf')).mode & 0o777, 0o600);
  assert.equal(lstatSync(machine.path('/usr/local/etc/private')).mode & 0o777, 0o700);
  assert.equal(readlinkSync(machine.path('/usr/local/bin/link')), '../etc/x/conf');
  // Only the directories it made are its own: their list is kept twice; their owner is set to root.
  const created = readFileSync(machine.path('/var/lib/homecloud/created-dirs'), 'utf8').split('\0').filter(Boolean);
  assert.deepEqual(created, ['/usr/local/etc', '/usr/local/etc/private', '/usr/local/etc/x']);
  assert.equal(
    readFileSync(machine.path('/usr/local/lib/homecloud/created-dirs'), 'utf8'),
    readFileSync(machine.path('/var/lib/homecloud/created-dirs'), 'utf8'),
  );
  assert.ok(applied.transcript.includes('chown root:root -- ' + machine.path('/usr/local/etc/private')), applied.transcript.join('\n'));
  assert.ok(applied.transcript.some((line) => line.startsWith('rsync -aKI --chown=0:0 --no-implied-dirs --from0 ') && line.endsWith(` ${machine.root}/`)));
  assert.equal(readFileSync(machine.path(`${generationsDir}/current/meta`), 'utf8'), "date=now\ncommit=it's a test\n");
  assert.ok(!existsSync(machine.path(pendingFile)), 'nothing pending after the commit');
  assert.deepEqual(unitCalls(applied.transcript), [], 'no unit to act on');
});

test("unit actions run in the plan's order: stop, daemon-reload, try-restart, try-reload, start", () => {
  const { machine, tree } = deployedMachine();
  const { [`${units}/old.service`]: _old, ...kept } = tree;
  const applied = machine.deploy({
    ...kept,
    '/usr/local/bin/a': { content: '#!/bin/sh\necho new\n', mode: 0o755 },
    '/usr/local/etc/c.conf': 'two\n',
    [`${units}/b.service`]: service('ExecStart=/usr/local/bin/a'),
    [`${units}/multi-user.target.wants/b.service`]: { link: '../b.service' },
  });
  assert.equal(applied.status, 0, applied.stderr);
  assert.deepEqual(
    applied.plan.units.map((unit) => `${unit.action} ${unit.unit}`),
    ['restart a.service', 'start b.service', 'reload-or-restart c.service', 'stop old.service'],
  );
  assert.deepEqual(unitCalls(applied.transcript), [
    'stop old.service',
    'daemon-reload',
    'reset-failed old.service',
    'reset-failed b.service',
    'reset-failed a.service',
    'reset-failed c.service',
    'try-restart a.service',
    'try-reload-or-restart c.service',
    'start --no-block b.service',
  ]);
  assert.deepEqual([machine.unitState('a.service'), machine.unitState('b.service'), machine.unitState('old.service')], ['active', 'active', 'inactive']);
  assert.equal(applied.outcome.generation, 2);
});

test('a failed unit is restarted outright, after its failed state is cleared', () => {
  const { machine, tree } = deployedMachine();
  machine.unit('a.service', 'failed');
  const applied = machine.deploy({ ...tree, '/usr/local/bin/a': { content: '#!/bin/sh\necho fixed\n', mode: 0o755 } }, { failedUnits: ['a.service'] });
  assert.equal(applied.status, 0, applied.stderr);
  assert.deepEqual(unitCalls(applied.transcript), ['reset-failed a.service', 'restart a.service']);
  assert.equal(machine.unitState('a.service'), 'active');
});

test('a unit that was not running stays stopped: try-restart leaves it, and it is no failure', () => {
  const { machine, tree } = deployedMachine();
  machine.unit('a.service', 'inactive');
  const applied = machine.deploy({ ...tree, '/usr/local/bin/a': { content: '#!/bin/sh\necho again\n', mode: 0o755 } });
  assert.equal(applied.status, 0, applied.stderr);
  // Not running, so its failed state (if any) is not cleared either.
  assert.deepEqual(unitCalls(applied.transcript), ['try-restart a.service']);
  assert.equal(machine.unitState('a.service'), 'inactive');
  assert.equal(applied.outcome.generation, 2);
});

test('a unit that fails after its restart fails the apply with its status and journal, and nothing is committed', () => {
  const { machine, tree } = deployedMachine();
  machine.crashes('a.service');
  const applied = machine.deploy({ ...tree, '/usr/local/bin/a': { content: '#!/bin/sh\nexit 7\n', mode: 0o755 } });
  assert.equal(applied.status, 3);
  assert.deepEqual(
    applied.outcome.unhealthy.map((report) => report.unit),
    ['a.service'],
  );
  assert.deepEqual(applied.outcome.unhealthy[0]!.details, ['  x a.service - stub', '       Active: failed', '  a.service: what it logged']);
  assert.equal(applied.outcome.generation, undefined);
  assert.equal(applied.outcome.phases.at(-1), 'health');
  assert.ok(applied.transcript.some((line) => line.startsWith('journalctl --no-pager -q -n 30 -u a.service --since @')));
  assert.equal(readFileSync(machine.path(`${generationsDir}/last`), 'utf8'), '1\n', 'no generation was committed');
  // The next deploy looks at what this one placed, and plans the restart again (the unit had failed).
  assert.ok(readFileSync(machine.path(pendingFile), 'utf8').includes('/usr/local/bin/a\0'));
  assert.equal(machine.read('/usr/local/bin/a'), '#!/bin/sh\nexit 7\n', 'the files stay placed');
});

test('prune: a taken-over file is kept as an original and comes back when the tree no longer has it', () => {
  const machine = scratch();
  writeFileSync(machine.path('/usr/local/bin/tool'), "the machine's own\n");
  writeFileSync(machine.path('/usr/local/bin/same'), 'same\n');
  const taken = machine.deploy({
    '/usr/local/bin/tool': { content: 'homecloud\n', mode: 0o755 },
    '/usr/local/bin/same': 'same\n',
    '/usr/local/bin/new': 'new\n',
  });
  assert.equal(taken.status, 0, taken.stderr);
  assert.equal(machine.read('/usr/local/bin/tool'), 'homecloud\n');
  assert.equal(machine.read(`${originalsDir}/usr/local/bin/tool`), "the machine's own\n");
  // A file that already is what homecloud places is no original.
  assert.ok(!existsSync(machine.path(`${originalsDir}/usr/local/bin/same`)));
  const removed = machine.deploy({ '/usr/local/bin/same': 'same\n' });
  assert.equal(removed.status, 0, removed.stderr);
  assert.equal(machine.read('/usr/local/bin/tool'), "the machine's own\n", 'the original is back');
  assert.ok(!existsSync(machine.path(`${originalsDir}/usr/local/bin/tool`)));
  assert.ok(!existsSync(machine.path('/usr/local/bin/new')), 'a file with no original is removed');
});

test('prune: directories homecloud made go when empty; a directory in the way of a file is kept as an original', () => {
  const machine = scratch();
  mkdirSync(machine.path('/etc/tool.d'));
  writeFileSync(machine.path('/etc/tool.d/local.conf'), 'local\n');
  const first = machine.deploy({ '/usr/local/opt/x/y/file': 'x\n', '/etc/tool.d': 'now a file\n' });
  assert.equal(first.status, 0, first.stderr);
  assert.equal(machine.read('/etc/tool.d'), 'now a file\n');
  assert.equal(machine.read(`${originalsDir}/etc/tool.d/local.conf`), 'local\n');
  const second = machine.deploy({});
  assert.equal(second.status, 0, second.stderr);
  assert.ok(!existsSync(machine.path('/usr/local/opt')), 'every directory homecloud made is gone');
  assert.ok(existsSync(machine.path('/usr/local/bin')), 'a directory it did not make stays');
  assert.equal(machine.read('/etc/tool.d/local.conf'), 'local\n', 'the directory is back');
});

test('a directory homecloud made that holds files it does not manage refuses the change before anything changes', () => {
  const machine = scratch();
  assert.equal(machine.deploy({ '/usr/local/opt/d/managed': 'm\n' }).status, 0);
  writeFileSync(machine.path('/usr/local/opt/d/mine'), "not homecloud's\n");
  const refused = machine.deploy({ '/usr/local/opt/d': 'a file now\n' });
  assert.equal(refused.status, 4);
  assert.deepEqual(refused.outcome.refused, { message: '/usr/local/opt/d holds /usr/local/opt/d/mine, which homecloud does not manage', byCheck: false });
  assert.deepEqual(refused.outcome.phases, ['check']);
  assert.deepEqual(refused.transcript, [], 'nothing was asked of the machine');
  assert.ok(!existsSync(machine.path(pendingFile)));
});

test('the package phase purges, then installs, through apt-get with its lock timeout', () => {
  const machine = scratch();
  const applied = machine.deploy({ '/usr/local/etc/p': 'p\n' }, { install: ['jq', 'curl'], purge: ['less'] });
  assert.equal(applied.status, 0, applied.stderr);
  assert.deepEqual(
    applied.transcript.filter((line) => line.startsWith('apt-get ')),
    ['apt-get -o DPkg::Lock::Timeout=300 purge -y -q less', 'apt-get -o DPkg::Lock::Timeout=300 install -y -q --no-install-recommends jq curl'],
  );
});

test('the initd hook runs make in its directory when the plan says so', () => {
  const machine = scratch();
  const applied = machine.deploy({ '/usr/local/opt/initd/Makefile': 'all:\n' });
  assert.equal(applied.status, 0, applied.stderr);
  assert.ok(applied.plan.hook);
  assert.deepEqual(
    applied.transcript.filter((line) => line.startsWith('make ')),
    [`make -s -C ${machine.path('/usr/local/opt/initd')}`],
  );
});

test('the probe finds nothing moved after a commit, then a hand edit; recording the state again settles it', () => {
  const { machine } = deployedMachine();
  const known = sha256(machine.read(`${generationsDir}/current/manifest.json`));
  const probe = () => keyValues(machine.run(probeScript(known)).stdout.split('\n'));
  const clean = probe();
  assert.equal(clean.ENV_ID, 'debian');
  assert.equal(clean.ENV_VERSION_ID, '"12"', "printed as read; parsed on the operator's side");
  assert.equal(clean.HC_SYSTEMD, 'yes');
  assert.equal(clean.HC_MOVED, undefined);
  assert.equal(clean.HC_PENDING, undefined);
  writeFileSync(machine.path('/usr/local/etc/c.conf'), 'edited by hand\n');
  const moved = probe();
  assert.equal(Buffer.from(moved.HC_MOVED!, 'base64').toString(), '/usr/local/etc/c.conf\0');
  const found = Buffer.from(moved.HC_MOVED_FOUND!, 'base64').toString().split('\0');
  assert.deepEqual(found.slice(0, 3), ['/usr/local/etc/c.conf', 'f', 'f']);
  assert.equal(Buffer.from(moved.HC_MOVED_SUMS!, 'base64').toString(), `${sha256('edited by hand\n')}  /usr/local/etc/c.conf\0`);
  // Touched only (the same content): recorded again, nothing moves any more.
  writeFileSync(machine.path('/usr/local/etc/c.conf'), 'one\n');
  assert.equal(machine.run(recordStateScript()).status, 0);
  assert.equal(probe().HC_MOVED, undefined);
});

test('the probe under the lock says what the probe alone says, and keeps the package list until dpkg moves', () => {
  const { machine } = deployedMachine();
  const known = sha256(machine.read(`${generationsDir}/current/manifest.json`));
  const alone = () => machine.run(probeScript(known));
  const locked = () => {
    const run = machine.run(lockScript('command=deploy started=now host=h user=u', 1, probeScript(known)));
    assert.equal(run.status, 0, run.stderr);
    const lines = run.stdout.split('\n');
    assert.equal(lines[0], 'locked');
    return { ...run, lines: lines.slice(1, lines.indexOf('probed')) };
  };
  const same = () => {
    const a = alone();
    const b = locked();
    assert.deepEqual(keyValues(b.lines), keyValues(a.stdout.split('\n')));
    return { facts: keyValues(b.lines), transcript: b.transcript };
  };
  assert.equal(alone().status, 0);
  assert.ok(!existsSync(machine.path('/run/homecloud')), 'the probe alone writes nothing');
  const first = same();
  assert.equal(first.facts.HC_MOVED, undefined);
  assert.equal(first.facts.HC_PACKAGES, 'installed=dpkg=amd64 installed=less=all ');
  assert.equal(first.facts.ENV_NPROC, spawnSync('nproc', { encoding: 'utf8' }).stdout.trim(), 'counted as nproc counts');
  assert.ok(first.transcript.includes('dpkg-query -W -f=${db:Status-Status}=${Package}=${Architecture} '));
  // Kept: the next locked probe reads the list without dpkg-query, until dpkg's status file is newer than the list.
  assert.deepEqual(
    locked().transcript.filter((line) => line.startsWith('dpkg-query')),
    [],
  );
  mkdirSync(machine.path('/var/lib/dpkg'), { recursive: true });
  writeFileSync(machine.path('/var/lib/dpkg/status'), 'Package: less\n');
  assert.equal(locked().transcript.filter((line) => line.startsWith('dpkg-query')).length, 1);
  // A hand edit, a removed file (its directory moves too) and a changed mode: moved, for both.
  writeFileSync(machine.path('/usr/local/etc/c.conf'), 'edited by hand\n');
  rmSync(machine.path('/usr/local/bin/a'));
  assert.equal(Buffer.from(same().facts.HC_MOVED!, 'base64').toString(), '/usr/local/bin\0/usr/local/bin/a\0/usr/local/etc/c.conf\0');
  writeFileSync(machine.path('/usr/local/bin/a'), '#!/bin/sh\n', { mode: 0o755 });
  writeFileSync(machine.path('/usr/local/etc/c.conf'), 'one\n');
  assert.equal(machine.run(recordStateScript()).status, 0);
  assert.equal(same().facts.HC_MOVED, undefined);
  chmodSync(machine.path('/usr/local/bin/a'), 0o700);
  assert.equal(Buffer.from(same().facts.HC_MOVED!, 'base64').toString(), '/usr/local/bin/a\0');
});

test('clobber stops the units, removes what homecloud placed, puts originals back and forgets its state', () => {
  const machine = scratch();
  writeFileSync(machine.path('/usr/local/bin/tool'), "the machine's own\n");
  const tree: Tree = { '/usr/local/bin/tool': 'homecloud\n', [`${units}/a.service`]: service('ExecStart=/usr/local/bin/tool'), '/usr/local/opt/x/file': 'x\n' };
  assert.equal(machine.deploy(tree).status, 0);
  machine.unit('a.service', 'failed');
  const entries = machine.committed()!.entries;
  const paths = Object.keys(entries).sort().reverse();
  const clobbered = machine.run(
    clobberScript(
      paths.filter((path) => entries[path]!.type !== 'dir'),
      paths.filter((path) => entries[path]!.type === 'dir'),
      ['a.service'],
    ),
  );
  assert.equal(clobbered.status, 0, clobbered.stderr);
  assert.equal(clobbered.stdout, 'clobbered\n');
  assert.deepEqual(unitCalls(clobbered.transcript), ['stop a.service', 'daemon-reload', 'reset-failed']);
  assert.equal(machine.read('/usr/local/bin/tool'), "the machine's own\n");
  for (const gone of ['/usr/local/opt', '/usr/local/lib/systemd', '/var/lib/homecloud', '/usr/local/lib/homecloud'])
    assert.ok(!existsSync(machine.path(gone)), gone);
  assert.ok(existsSync(machine.path('/usr/local/lib')), 'what the machine had stays');
});

test('the lock takes the machine, probes it, then runs the script it is sent, detached, holding the lock', () => {
  const machine = scratch();
  const run = 'echo "ran with the lock: $(flock -n "$HOMECLOUD_ROOT/run/homecloud/lock" true 2>/dev/null && echo free || echo held)"\n';
  const script = lockScript('command=deploy started=now host=h user=u', 1, 'echo probing');
  writeFileSync(join(machine.dir, 'lock.sh'), script);
  const result = spawnSync('bash', [join(machine.dir, 'lock.sh')], {
    env: { ...process.env, HOMECLOUD_ROOT: machine.root },
    input: `run ${Buffer.byteLength(run)}\n${run}`,
    encoding: 'utf8',
  });
  assert.equal(result.status, 0, result.stderr);
  assert.equal(result.stdout, 'locked\nprobing\nprobed\nran with the lock: held\n');
  assert.equal(machine.read('/run/homecloud/holder'), 'command=deploy started=now host=h user=u\n');
  assert.equal(machine.read('/var/lib/homecloud/run.sh'), run);
});
