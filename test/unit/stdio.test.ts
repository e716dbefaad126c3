// Colours, and standard output written without Node's streams while no code made them.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { createColors } from '../../src/report/colors.ts';
import { cliPath, makeRepo, projectRoot } from '../helpers/repo.ts';

test('colours: off is the text itself; on wraps it, and an inner style that ends does not end the outer one', () => {
  const off = createColors(false);
  assert.equal(off.red('x'), 'x');
  assert.equal(off.bold(off.dim('x')), 'x');
  const on = createColors(true);
  assert.equal(on.red('x'), '\x1b[31mx\x1b[39m');
  assert.equal(on.bold(`a ${on.dim('b')} c`), '\x1b[1ma \x1b[2mb\x1b[22m\x1b[1m c\x1b[22m');
  assert.equal(on.red(`a ${on.green('b')} c`), '\x1b[31ma \x1b[32mb\x1b[31m c\x1b[39m');
});

/** Run the CLI with a preload that says, at exit, whether Node's stream modules were loaded. */
function cliReportingStreams(args: string[]) {
  const root = makeRepo({ 'machines/m/etc/m.conf': 'm\n' });
  const preload = join(root, 'streams.cjs');
  writeFileSync(
    preload,
    "process.on('exit', () => require('fs').writeSync(2, `streams loaded: ${process.moduleLoadList.includes('NativeModule stream')}\\n`));\n",
  );
  // Terminals are told by the native module's isatty: without it node:tty is loaded, and the streams with it.
  const { HOMECLOUD_NATIVE: _, ...env } = process.env;
  return spawnSync(process.execPath, ['--require', preload, cliPath, '-C', root, ...args], {
    cwd: projectRoot,
    env: { ...env, NO_COLOR: '1' },
    encoding: 'utf8',
  });
}

test('a plain build prints its lines without making Node streams (they cost milliseconds); --json too', () => {
  const built = cliReportingStreams(['build']);
  assert.equal(built.status, 0, built.stderr);
  assert.match(built.stdout, /^m\s+built: /m);
  assert.equal(built.stderr, 'streams loaded: false\n');
  const json = cliReportingStreams(['build', '--json']);
  assert.equal(json.status, 0, json.stderr);
  assert.equal((JSON.parse(json.stdout) as { machines: { status: string }[] }).machines[0]!.status, 'built');
  assert.equal(json.stderr, 'streams loaded: false\n');
});

test('an error of a plain build goes to standard error in full, and the exit status says it', () => {
  const failed = cliReportingStreams(['build', 'nosuch']);
  assert.equal(failed.status, 2);
  assert.match(failed.stderr, /^error: unknown machine "nosuch"/m);
  assert.equal(failed.stdout, '');
});

test('a reader that went away ends the output quietly: exit status of the command, no stack trace', async () => {
  const root = makeRepo(Object.fromEntries(Array.from({ length: 3 }, (_, i) => [`machines/m${i}/etc/m.conf`, 'm\n'])));
  const child = spawn(process.execPath, [cliPath, '-C', root, 'build'], {
    cwd: projectRoot,
    env: { ...process.env, NO_COLOR: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout.destroy();
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const status = await new Promise<number | null>((resolve) => child.on('close', resolve));
  assert.equal(stderr, '');
  assert.equal(status, 0);
});
