// The base layer's bash library (/usr/local/lib/homecloud/lib.bash), sourced by bash on the host in a scratch
// directory, as the layers' scripts source it on their machines.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { projectRoot } from '../helpers/repo.ts';

const library = join(projectRoot, 'layers/_/usr/local/lib/homecloud/lib.bash');
const scratch = mkdtempSync(join(tmpdir(), 'homecloud-lib-bash-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

/** Runs `script` in bash with the library sourced, as a script named `tool`, in the scratch directory. */
function bash(script: string) {
  const result = spawnSync('bash', ['-c', `set -euo pipefail; source ${library}\n${script}`, 'tool'], { cwd: scratch, encoding: 'utf8' });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** The settings read_settings takes from a file with `content`, as an object. */
function settings(content: string): Record<string, string> {
  const file = join(scratch, 'settings.env');
  writeFileSync(file, content);
  // NUL-separated: values may hold anything but NUL and newline.
  const result = bash(`declare -A got=()\nread_settings got ${file}\nfor key in "\${!got[@]}"; do printf '%s\\0%s\\0' "$key" "\${got[$key]}"; done`);
  assert.deepEqual([result.status, result.stderr], [0, '']);
  const fields = result.stdout.split('\0').slice(0, -1);
  return Object.fromEntries(Array.from({ length: fields.length / 2 }, (_, i) => [fields[2 * i]!, fields[2 * i + 1]!]));
}

test('the library is a file to source, not to run', () => {
  assert.equal(statSync(library).mode & 0o111, 0);
});

test('read_settings takes each value as written: never run, quotes, spaces and "=" kept', () => {
  assert.deepEqual(
    settings(
      [
        'COMMAND=$(touch ran)`touch ran`',
        'QUOTED="a b" \'c\'',
        'SPACES=  two  spaces  ',
        'EQUALS=a=b==c',
        'EMPTY=',
        'BACKSLASH=a\\nb\\',
        'VARIABLE=${HOME}',
      ].join('\n') + '\n',
    ),
    {
      COMMAND: '$(touch ran)`touch ran`',
      QUOTED: '"a b" \'c\'',
      SPACES: '  two  spaces  ',
      EQUALS: 'a=b==c',
      EMPTY: '',
      BACKSLASH: 'a\\nb\\',
      VARIABLE: '${HOME}',
    },
  );
  assert.equal(existsSync(join(scratch, 'ran')), false, 'nothing ran');
});

test('read_settings skips comments, blank lines and invalid keys; a CRLF line, an indented key and a last line without a newline count', () => {
  assert.deepEqual(
    settings(
      [
        '# COMMENT=no',
        '',
        '   ',
        'lower=no',
        '1DIGIT=no',
        'BAD-KEY=no',
        'SPACE BEFORE=no',
        'NO_EQUALS',
        'KEY_2=digits',
        '  INDENTED=yes',
        'CRLF=windows\r',
        'TWICE=first',
        'TWICE=second',
        'LAST=no newline',
      ].join('\n'),
    ),
    { KEY_2: 'digits', INDENTED: 'yes', CRLF: 'windows', TWICE: 'second', LAST: 'no newline' },
  );
});

test('read_settings refuses an array that is not associative, and a file it cannot read, naming them', () => {
  const file = join(scratch, 'refused.env');
  writeFileSync(file, 'PATH=x\n');
  const indexed = bash(`declare -a got=()\nread_settings got ${file}\necho not reached`);
  assert.deepEqual([indexed.status, indexed.stdout, indexed.stderr], [1, '', 'tool: read_settings: got is not an associative array (declare -A got)\n']);
  const missing = bash(`declare -A got=()\nread_settings got ${scratch}/missing.env\necho not reached`);
  assert.deepEqual([missing.status, missing.stdout, missing.stderr], [1, '', `tool: cannot read the settings in ${scratch}/missing.env\n`]);
  // A function's own array, declared without a value, is one too.
  const local = bash(`f() { local -A mine; read_settings mine ${file}; echo "\${mine[PATH]}"; }\nf`);
  assert.deepEqual([local.status, local.stdout, local.stderr], [0, 'x\n', '']);
});

test('valid_name takes letters, digits, - and _ not starting with -, and names the file of a name it refuses', () => {
  for (const name of ['web', 'a_b-c', '9lives', '_x', 'x-', 'A']) {
    assert.deepEqual(bash(`valid_name '${name}' /etc/x.conf`), { status: 0, stdout: '', stderr: '' }, name);
  }
  for (const name of ['', '-x', 'a.b', 'a b', 'a/b', 'ä', 'a$(id)', "a'"]) {
    const quoted = `'${name.replaceAll("'", "'\\''")}'`;
    const result = bash(`if valid_name ${quoted} /etc/x.conf; then echo valid; fi`);
    assert.deepEqual(
      result,
      { status: 0, stdout: '', stderr: `tool: /etc/x.conf: "${name}" is not a valid name (letters, digits, - and _, not starting with -)\n` },
      name,
    );
  }
});

test("log writes to stderr after the script's name; die exits 1", () => {
  assert.deepEqual(bash('log "one" "two"; die "gone"; echo not reached'), { status: 1, stdout: '', stderr: 'tool: one two\ntool: gone\n' });
});
