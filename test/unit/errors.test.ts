// Errors: a machine's failure says whose it is and in which phase; one JSON shape; a bug stays a bug (stack, exit status 70).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { acrossBuiltMachines } from '../../src/cli/machines.ts';
import { HomecloudError, errorJson, isHomecloudError, machineFailure } from '../../src/load/errors.ts';
import { exitStatus, machineError, printError, printMachineError } from '../../src/report/output.ts';
import { makeRepo, projectRoot } from '../helpers/repo.ts';

/** What `write` wrote to standard error while it ran. */
function stderrOf(write: () => void): string {
  const original = process.stderr.write;
  let text = '';
  process.stderr.write = ((chunk: string) => {
    text += chunk;
    return true;
  }) as typeof process.stderr.write;
  try {
    write();
  } finally {
    process.stderr.write = original;
  }
  return text;
}

test('a machine failure carries the machine and the phase as fields; the first to say so wins', () => {
  const error = new HomecloudError(
    "transfer failed, nothing was applied: the machine's disk is full",
    undefined,
    'free space on the machine, then deploy again',
    { machine: 'nas', phase: 'transfer' },
  );
  assert.equal(error.machine, 'nas');
  assert.equal(error.phase, 'transfer');
  assert.equal(error.of('media', 'apply'), error);
  assert.equal(error.machine, 'nas');
  assert.equal(error.phase, 'transfer');
  const later = new HomecloudError('cannot reach 10.0.0.9').of('media', 'connect');
  assert.deepEqual([later.machine, later.phase], ['media', 'connect']);
});

test('one JSON shape for every error: machine, phase, message, file, line, column, hint', () => {
  const located = new HomecloudError('unknown setting "colour"', { file: 'homecloud.json', line: 3, column: 3 }, 'see FORMAT.md');
  assert.deepEqual(JSON.parse(JSON.stringify({ error: located })), {
    error: { message: 'unknown setting "colour"', file: 'homecloud.json', line: 3, column: 3, hint: 'see FORMAT.md' },
  });
  const failed = new HomecloudError('unhealthy after the change: hello.service', undefined, undefined, { machine: 'nas', phase: 'apply' });
  assert.deepEqual(errorJson(failed), {
    machine: 'nas',
    phase: 'apply',
    message: 'unhealthy after the change: hello.service',
    file: undefined,
    line: undefined,
    column: undefined,
    hint: undefined,
  });
  // Older sites put the machine where the file goes: it is not a file.
  const old = new HomecloudError('nas runs without systemd', { file: 'nas' }).of('nas', 'probe');
  assert.equal(errorJson(old).file, undefined);
  assert.equal(errorJson(new HomecloudError('m4 failed', { file: 'nas', line: 2 }).of('nas')).file, 'nas');
});

test("machineFailure: a HomecloudError is the machine's, a system error becomes one, anything else is thrown on as it is", () => {
  const own = new HomecloudError('refused');
  assert.equal(machineFailure(own, 'nas', 'apply'), own);
  assert.deepEqual([own.machine, own.phase], ['nas', 'apply']);
  let system: unknown;
  try {
    readFileSync('/nonexistent/homecloud/manifest.json');
  } catch (error) {
    system = error;
  }
  const converted = machineFailure(system, 'nas', 'plan');
  assert.equal(converted.message, 'no such file or directory');
  assert.deepEqual(converted.where, { file: '/nonexistent/homecloud/manifest.json' });
  assert.deepEqual([converted.machine, converted.phase], ['nas', 'plan']);
  const bug = new TypeError("Cannot read properties of undefined (reading 'entries')");
  assert.throws(
    () => machineFailure(bug, 'nas', 'plan'),
    (thrown: unknown) => thrown === bug,
  );
  // Node's own codes (ERR_...) are bugs too.
  const misuse = Object.assign(new TypeError('The "path" argument must be of type string'), { code: 'ERR_INVALID_ARG_TYPE' });
  assert.throws(
    () => machineFailure(misuse, 'nas'),
    (thrown: unknown) => thrown === misuse,
  );
});

test('a HomecloudError from another bundle is recognised by its name', () => {
  const foreign = Object.assign(new Error('from the builder bundle'), { name: 'HomecloudError' });
  assert.ok(isHomecloudError(foreign));
  assert.ok(!isHomecloudError(new RangeError('Invalid array length')));
});

test('the human line: machine, what failed, the place (never the machine again), the message, the hint, then more lines', () => {
  const error = new HomecloudError('cannot fetch generation 4: gone', { file: 'nas' }, 'its generations: homecloud generations nas').of('nas', 'fetch');
  assert.equal(machineError('nas', error), 'nas: cannot fetch generation 4: gone\n  its generations: homecloud generations nas');
  const printed = stderrOf(() => printMachineError('nas', error, { doing: 'rollback to generation 4 failed', after: [undefined, '  ● hello.service'] }));
  assert.equal(
    printed,
    'error: nas: rollback to generation 4 failed: cannot fetch generation 4: gone\n  its generations: homecloud generations nas\n  ● hello.service\n',
  );
  assert.equal(
    stderrOf(() => printMachineError('m', new HomecloudError('undefined macro', { file: 'layers/a/x', line: 3 }))),
    'error: m: layers/a/x:3: undefined macro\n',
  );
});

test('printError: a user error exits 2; anything else is a bug, shown with its stack, and exits 70', () => {
  let status = 0;
  const user = stderrOf(() => (status = printError(new HomecloudError('unknown machine "x"', undefined, 'homecloud ls lists them'))));
  assert.equal(status, exitStatus.usage);
  assert.equal(user, 'error: unknown machine "x"\n  homecloud ls lists them\n');
  assert.equal(
    stderrOf(() => printError(new HomecloudError('cannot reach 10.0.0.9').of('nas', 'connect'))),
    'error: nas: cannot reach 10.0.0.9\n',
  );
  const bug = stderrOf(() => (status = printError(new TypeError('x is not a function'))));
  assert.equal(status, 70);
  assert.match(bug, /^error: TypeError: x is not a function\n {4}at .*errors\.test\.ts/);
  assert.match(bug, /\nthis is a bug in homecloud: please report it with the lines above\n$/);
});

test("a machine's HomecloudError fails that machine only; a TypeError in its work is not made a user error", async () => {
  const root = makeRepo({ 'machines/a/etc/x': 'a\n', 'machines/b/etc/x': 'b\n' });
  const options = { repo: root, json: false, verbose: false };
  const { outcomes } = await acrossBuiltMachines(options, [], async (target) => {
    if (target.machine === 'a') throw new HomecloudError('cannot reach a.example');
    return target.machine;
  });
  const a = outcomes.find((o) => o.machine === 'a')!;
  assert.deepEqual([a.error?.message, a.error?.machine], ['cannot reach a.example', 'a']);
  assert.equal(outcomes.find((o) => o.machine === 'b')?.value, 'b');
  await assert.rejects(
    acrossBuiltMachines(options, ['a'], async () => {
      throw new TypeError("Cannot read properties of undefined (reading 'host')");
    }),
    TypeError,
  );
});

test('the CLI: a bug prints its stack and the bug line and exits 70', () => {
  const root = makeRepo({ 'machines/m/etc/x': '' });
  // The build command with a builder that breaks as a bug would: loaded first, so the command's import finds it patched.
  const script = join(root, 'bug.mts');
  writeFileSync(
    script,
    `const { Builder } = await import(${JSON.stringify(join(projectRoot, 'src/build/builder.ts'))});
Builder.prototype.build = async function () { return [].x.y; };
process.argv = [process.execPath, 'homecloud', '-C', ${JSON.stringify(root)}, 'build'];
await import(${JSON.stringify(join(projectRoot, 'src/cli/main.ts'))});
`,
  );
  const run = spawnSync(process.execPath, ['--import', 'tsx', script], { cwd: projectRoot, encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' } });
  assert.equal(run.status, 70, run.stderr);
  assert.match(run.stderr, /^error: TypeError: Cannot read properties of undefined \(reading 'y'\)\n {4}at /);
  assert.match(run.stderr, /this is a bug in homecloud/);
});
