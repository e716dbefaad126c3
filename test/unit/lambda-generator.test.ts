import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { projectRoot } from '../helpers/repo.ts';

// The lambda layer's systemd generator, run on the host against a scratch tree: its paths are
// rewritten to point there (the sandbox tests run it for real, as systemd does).
const generator = readFileSync(join(projectRoot, 'layers/lambda/usr/local/lib/systemd/system-generators/lambda'), 'utf8');
const scratch = mkdtempSync(join(tmpdir(), 'homecloud-lambda-generator-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

function generate(files: Record<string, { content: string; mode?: number }>) {
  const root = mkdtempSync(join(scratch, 'run-'));
  for (const [path, file] of Object.entries(files)) {
    mkdirSync(join(root, path, '..'), { recursive: true });
    writeFileSync(join(root, path), file.content);
    chmodSync(join(root, path), file.mode ?? 0o644);
  }
  const script = generator
    .replace(/^opt=.*$/m, `opt=${root}/opt`)
    .replace(/^run=.*$/m, `run=${root}/run`)
    .replace(/^defaults=.*$/m, `defaults=${root}/defaults.env`);
  writeFileSync(join(root, 'generator'), script);
  mkdirSync(join(root, 'out'));
  const result = spawnSync('bash', [join(root, 'generator'), join(root, 'out'), join(root, 'out'), join(root, 'out')], { encoding: 'utf8' });
  const read = (path: string) => readFileSync(join(root, path), 'utf8');
  const list = (path: string) => readdirSync(join(root, path)).sort();
  return { root, result, read, list };
}

const fn = (body: string) => ({ content: `#!/bin/bash\n${body}\n`, mode: 0o755 });

test('a socket and a per-request service per executable, with its nginx location; what is not a function is skipped, and said', () => {
  const { result, read, list } = generate({
    'opt/bin/hello': fn('echo hello'),
    'opt/bin/notes.txt': { content: 'not executable' },
    'opt/bin/bad name': fn('true'),
    'defaults.env': { content: 'LAMBDA_TIMEOUT=5s\n# a comment last\n' },
  });
  assert.equal(result.status, 0, result.stderr);
  assert.match(result.stderr, /skipping .*bad name: "bad name" is not a valid name/);
  assert.deepEqual(list('out'), ['lambda-hello.socket', 'lambda-hello@.service', 'sockets.target.wants']);
  assert.deepEqual(list('out/sockets.target.wants'), ['lambda-hello.socket']);
  assert.match(read('out/lambda-hello.socket'), /^ListenStream=.*\/run\/hello\.sock\nAccept=yes$/m);
  assert.match(read('out/lambda-hello@.service'), /^ExecStart=\/usr\/local\/libexec\/lambda\/http .*\/opt\/bin\/hello$/m);
  assert.match(read('out/lambda-hello@.service'), /^RuntimeMaxSec=5s$/m, 'the default from the facts file');
  assert.match(read('out/lambda-hello@.service'), /^DynamicUser=yes$/m);
  assert.deepEqual(list('run/nginx'), ['hello.conf']);
  assert.match(read('run/nginx/hello.conf'), /^location \/hello\/ \{\n {4}proxy_pass http:\/\/unix:.*\/run\/hello\.sock:;/m);
});

test('a scale-to-zero front per declaration: socket, proxy service, and the backing unit stops when it is no longer needed', () => {
  const { result, read, list } = generate({
    'opt/scale-to-zero/files.conf': { content: 'LISTEN=8080\nBACKEND=127.0.0.1:18080\nUNIT=python-files.service\n# the idle time comes from the facts\n' },
    'opt/scale-to-zero/broken.conf': { content: 'LISTEN=8081\n' },
    'defaults.env': { content: 'LAMBDA_IDLE_TIME=2min\n' },
  });
  assert.equal(result.status, 0, result.stderr);
  assert.match(result.stderr, /skipping .*broken\.conf: it needs LISTEN= and BACKEND=/);
  assert.deepEqual(list('out'), ['python-files.service.d', 'scale-to-zero-files.service', 'scale-to-zero-files.socket', 'sockets.target.wants']);
  assert.match(read('out/scale-to-zero-files.socket'), /^ListenStream=8080$/m);
  const front = read('out/scale-to-zero-files.service');
  assert.match(front, /^Requires=python-files\.service\nAfter=python-files\.service$/m);
  assert.match(front, /^ExecStart=\/lib\/systemd\/systemd-socket-proxyd --exit-idle-time=2min 127\.0\.0\.1:18080$/m);
  assert.match(read('out/python-files.service.d/50-scale-to-zero.conf'), /^StopWhenUnneeded=yes$/m);
});

test('--fingerprint changes with the set of functions and with a declaration, not with a function\'s code', () => {
  const { root } = generate({ 'opt/bin/a': fn('echo 1') });
  const fingerprint = () => spawnSync('bash', [join(root, 'generator'), '--fingerprint'], { encoding: 'utf8' }).stdout;
  const one = fingerprint();
  assert.match(one, /^[0-9a-f]{64}\n$/);
  writeFileSync(join(root, 'opt/bin/a'), '#!/bin/bash\necho 2\n');
  assert.equal(fingerprint(), one);
  writeFileSync(join(root, 'opt/bin/b'), '#!/bin/bash\necho 1\n');
  chmodSync(join(root, 'opt/bin/b'), 0o755);
  const two = fingerprint();
  assert.notEqual(two, one);
  mkdirSync(join(root, 'opt/scale-to-zero'));
  writeFileSync(join(root, 'opt/scale-to-zero/x.conf'), 'LISTEN=1\nBACKEND=127.0.0.1:2\n');
  assert.notEqual(fingerprint(), two);
});
