// The process runner: one result for every way of running a program, failures thrown or returned as asked.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { buildSync } from 'esbuild';
import { HomecloudError } from '../../src/load/errors.ts';
import { openProcess, processFailure, runProcess, runProcessSync } from '../../src/util/process.ts';
import { projectRoot } from '../helpers/repo.ts';

const scratch = mkdtempSync(join(tmpdir(), 'homecloud-process-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

test('a run gives the command as argv, the exit status, both outputs and how long it took', async () => {
  for (const result of [
    await runProcess('bash', ['-c', 'echo out; echo err >&2; exit 3'], { check: false }),
    runProcessSync('bash', ['-c', 'echo out; echo err >&2; exit 3'], { check: false }),
  ]) {
    assert.deepEqual(result.command, ['bash', '-c', 'echo out; echo err >&2; exit 3']);
    assert.equal(result.status, 3);
    assert.equal(result.signal, null);
    assert.equal(result.stdout, 'out\n');
    assert.equal(result.stderr, 'err\n');
    assert.ok(result.milliseconds >= 0 && result.milliseconds < 10_000);
  }
});

test('by default a non-zero exit throws a HomecloudError naming the command (pasteable) and its last lines', async () => {
  const script = 'for i in 1 2 3 4 5 6 7; do echo "line $i" >&2; done; exit 4';
  for (const attempt of [() => runProcess('bash', ['-c', script]), async () => runProcessSync('bash', ['-c', script])]) {
    await assert.rejects(attempt, (error: unknown) => {
      assert.ok(error instanceof HomecloudError);
      assert.equal(
        error.message,
        `bash -c 'for i in 1 2 3 4 5 6 7; do echo "line $i" >&2; done; exit 4' failed (exit status 4):\n  line 3\n  line 4\n  line 5\n  line 6\n  line 7`,
      );
      return true;
    });
  }
  // Without standard error, the last lines of standard output.
  assert.match(
    processFailure(runProcessSync('sh', ['-c', 'echo only out; exit 1'], { check: false })).message,
    /^sh -c 'echo only out; exit 1' failed \(exit status 1\):\n {2}only out$/,
  );
});

test('a program that cannot start throws, checked or not: missing is "not installed"', async () => {
  for (const check of [true, false]) {
    await assert.rejects(
      runProcess('homecloud-no-such-program', [], { check }),
      (error: unknown) => error instanceof HomecloudError && error.message === 'homecloud-no-such-program is not installed',
    );
    assert.throws(
      () => runProcessSync('homecloud-no-such-program', [], { check }),
      (error: unknown) => error instanceof HomecloudError && error.message === 'homecloud-no-such-program is not installed',
    );
  }
  await assert.rejects(
    runProcess(scratch, []),
    (error: unknown) =>
      error instanceof HomecloudError && error.message.startsWith(`cannot run ${scratch}: `) && (error.cause as NodeJS.ErrnoException).code === 'EACCES',
  );
});

test('a signal is the result, as a shell says it: 128 + its number; an abort ends the program the same way', async () => {
  const killed = await runProcess('bash', ['-c', 'kill -KILL $$'], { check: false });
  assert.equal(killed.signal, 'SIGKILL');
  assert.equal(killed.status, 137);
  assert.match(processFailure(killed).message, /failed \(signal SIGKILL\)/);
  const abort = new AbortController();
  setTimeout(() => abort.abort(), 50);
  const aborted = await runProcess('sleep', ['10'], { signal: abort.signal, check: false });
  assert.equal(aborted.signal, 'SIGTERM');
  assert.equal(aborted.status, 143);
  assert.ok(aborted.milliseconds < 5000);
});

test('input, environment and directory reach the program; lines are heard as they come; bytes stay bytes', async () => {
  const lines: string[] = [];
  const result = await runProcess('bash', ['-c', 'cat; echo "$X $(pwd)"; printf "no newline"'], {
    input: 'in\n',
    env: { ...process.env, X: 'x' },
    cwd: scratch,
    onLine: (line) => lines.push(line),
  });
  assert.equal(result.stdout, `in\nx ${scratch}\nno newline`);
  assert.deepEqual(lines, ['in', `x ${scratch}`]);
  const bytes = Buffer.from([0, 0xff, 0xfe, 10, 0x80]);
  const binary = await runProcess('cat', [], { input: bytes, binary: true });
  assert.deepEqual(binary.stdout, bytes);
});

test('a session: lines one at a time, input while it runs, then a listener; done holds what followed the last line', async () => {
  const session = openProcess('bash', ['-c', 'echo ready; read -r name; echo "hello $name"; echo one; echo two; printf tail; echo oops >&2; exit 5']);
  assert.equal(await session.nextLine(), 'ready');
  session.write('homecloud\n');
  assert.equal(await session.nextLine(), 'hello homecloud');
  const rest: string[] = [];
  session.follow((line) => rest.push(line));
  session.end();
  const done = await session.done;
  assert.deepEqual(rest, ['one', 'two']);
  assert.equal(done.status, 5);
  assert.equal(done.stdout, 'tail');
  assert.equal(done.stderr, 'oops\n');
  assert.equal(await session.nextLine(), undefined);
});

test('a session whose program cannot start ends at once: no line, and done rejects', async () => {
  const session = openProcess('homecloud-no-such-program', []);
  assert.equal(await session.nextLine(), undefined);
  await assert.rejects(session.done, /homecloud-no-such-program is not installed/);
});

test('start-up stays cheap: loading the runner and the ssh transport loads no child_process', () => {
  // Bundled as the CLI is (tsx itself loads child_process, so the check runs in a plain node).
  const bundle = join(scratch, 'transport.cjs');
  buildSync({ entryPoints: [join(projectRoot, 'src/transport/ssh.ts')], bundle: true, platform: 'node', format: 'cjs', outfile: bundle, logLevel: 'silent' });
  const run = spawnSync(
    process.execPath,
    ['-e', `require(${JSON.stringify(bundle)}); console.log(process.moduleLoadList.filter((name) => name.includes('child_process')).join(' ') || 'none')`],
    { encoding: 'utf8' },
  );
  assert.equal(run.status, 0, run.stderr);
  assert.equal(run.stdout.trim(), 'none');
});
