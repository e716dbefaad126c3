// Quoting for the two readers of homecloud's command words: bash (scripts run over ssh) and rsync's -e (split by rsync itself).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { rsyncShell, shellQuote, shellWord } from '../../src/util/quote.ts';

/** Words that break naive quoting: spaces, both quotes, $ and backquotes, backslashes, newlines, tabs, leading dashes, %, the empty word. */
const words = [
  'plain',
  'with space',
  "it's",
  'say "hi"',
  '$HOME and ${HOME} and $(id)',
  '`id`',
  'back\\slash',
  'trailing\\',
  'two\nlines',
  'tab\there',
  '-x',
  '--rsync-path=mkdir -p /a && rsync',
  '',
  "'",
  '"',
  "''",
  '""',
  'ControlPath=/tmp/%C',
  'a b\'c"d\\e$f\ng',
  '*',
  '~root',
  'ünïcödé',
];

const scratch = mkdtempSync(join(tmpdir(), 'homecloud-quoting-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

test('shellQuote: every word comes back from bash as it was, alone and among others', () => {
  for (const word of words) {
    // The fixed script gets the word as $1 from a command line that holds it quoted.
    const run = spawnSync('bash', ['-c', `bash -c 'printf %s "$1"' _ ${shellQuote(word)}`], { encoding: 'utf8' });
    assert.equal(run.status, 0, run.stderr);
    assert.equal(run.stdout, word, JSON.stringify(word));
  }
  const all = spawnSync('bash', ['-c', `printf '%s\\0' ${words.map(shellQuote).join(' ')}`], { encoding: 'utf8' });
  assert.deepEqual(all.stdout.split('\0').slice(0, -1), words);
});

test('shellWord: plain words stay bare, the others are quoted and come back whole', () => {
  assert.equal(shellWord('rsync'), 'rsync');
  assert.equal(shellWord('--link-dest=/var/lib/homecloud/generations/current/tree'), '--link-dest=/var/lib/homecloud/generations/current/tree');
  assert.equal(shellWord('user@host:/path'), 'user@host:/path');
  const all = spawnSync('bash', ['-c', `printf '%s\\0' ${words.map(shellWord).join(' ')}`], { encoding: 'utf8' });
  assert.deepEqual(all.stdout.split('\0').slice(0, -1), words);
});

test("rsyncShell: rsync splits the -e value back into the words (rsync's own rules: doubled quotes, literal backslashes)", () => {
  // A remote shell that writes the arguments rsync gave it, then fails: the transfer never starts.
  const shell = join(scratch, 'argv shell');
  const out = join(scratch, 'argv.out');
  writeFileSync(shell, `#!/bin/bash\nprintf '%s\\0' "$@" > ${shellQuote(out)}\nexit 1\n`);
  chmodSync(shell, 0o755);
  mkdirSync(join(scratch, 'tree'), { recursive: true });
  for (const sample of [words, ['-o', "ProxyCommand=ssh -o 'ControlPath=/tmp/%%C' -W %h:%p -- 'root@10.0.0.1'"]]) {
    rmSync(out, { force: true });
    const run = spawnSync('rsync', ['-e', rsyncShell([shell, ...sample]), '-r', '--', `${join(scratch, 'tree')}/`, 'somehost:/x/'], { encoding: 'utf8' });
    assert.notEqual(run.status, 0);
    const argv = readFileSync(out, 'utf8').split('\0').slice(0, -1);
    // rsync adds the host and its own server command after the words.
    assert.deepEqual(argv.slice(0, sample.length), sample);
    assert.equal(argv[sample.length], 'somehost');
  }
});

test('rsyncShell: plain words are left bare, so the common -e value reads as typed', () => {
  assert.equal(
    rsyncShell(['ssh', '-o', 'BatchMode=yes', '-o', 'ControlPath=/run/homecloud-ssh-0/%C']),
    'ssh -o BatchMode=yes -o ControlPath=/run/homecloud-ssh-0/%C',
  );
  assert.equal(rsyncShell(['ssh', '-i', '/keys/my key', "it's"]), "ssh -i '/keys/my key' 'it''s'");
});
