import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { projectRoot } from '../helpers/repo.ts';
import { orderProblems } from '../helpers/unit-order.ts';

// The lambda layer's build-time generator, run as the build runs it: a tree with its inputs, and an empty
// output directory laid out like `/` (test/unit/generate.test.ts covers how the build runs generators).
// Then its HTTP side, which runs a function for one request, fed a request on stdin.
const libexec = join(projectRoot, 'layers/lambda/usr/local/libexec/lambda');
const generator = join(projectRoot, 'layers/lambda/usr/local/opt/initd/generators/lambda');
const scratch = mkdtempSync(join(tmpdir(), 'homecloud-lambda-generator-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

const places: Record<string, string> = { 'opt/': 'tree/usr/local/opt/lambda/', 'defaults.env': 'tree/usr/local/etc/default/lambda.env' };
const units = 'out/usr/local/lib/systemd/system';

function generate(files: Record<string, { content: string; mode?: number }>) {
  const root = mkdtempSync(join(scratch, 'run-'));
  for (const [name, file] of Object.entries(files)) {
    const prefix = Object.keys(places).find((key) => name.startsWith(key))!;
    const path = join(root, places[prefix]! + name.slice(prefix.length));
    mkdirSync(join(path, '..'), { recursive: true });
    writeFileSync(path, file.content);
    chmodSync(path, file.mode ?? 0o644);
  }
  for (const library of ['_/usr/local/lib/homecloud/lib.bash', '_/usr/local/lib/homecloud/generator.bash', 'lambda/usr/local/lib/lambda/scale-to-zero.bash']) {
    const path = join(root, 'tree', library.slice(library.indexOf('/')));
    mkdirSync(join(path, '..'), { recursive: true });
    copyFileSync(join(projectRoot, 'layers', library), path);
  }
  mkdirSync(join(root, 'out'));
  const result = spawnSync(generator, [join(root, 'tree'), join(root, 'out')], { encoding: 'utf8', env: { PATH: process.env.PATH } });
  const read = (path: string) => readFileSync(join(root, path), 'utf8');
  const list = (path: string) => readdirSync(join(root, path)).sort();
  return { root, result, read, list };
}

const fn = (body: string) => ({ content: `#!/bin/bash\n${body}\n`, mode: 0o755 });
/** The lines of one section of a unit file. */
const section = (unit: string, name: string) => (unit.split(/^(?=\[)/m).find((part) => part.startsWith(`[${name}]`)) ?? '').split('\n');

test('a socket enabled by sockets.target and a per-request service per executable, with its nginx location; each output names its declaration', () => {
  const { root, result, read, list } = generate({
    'opt/bin/hello': fn('echo hello'),
    'opt/bin/notes.txt': { content: 'not executable' },
    'defaults.env': { content: 'LAMBDA_TIMEOUT=5s\n# a comment last\n' },
  });
  assert.equal(result.status, 0, result.stderr);
  assert.equal(result.stderr, '');
  assert.deepEqual(list(units), ['lambda-hello.socket', 'lambda-hello@.service', 'lambda.slice', 'sockets.target.wants']);
  assert.deepEqual(list(`${units}/sockets.target.wants`), ['lambda-hello.socket']);
  assert.equal(readlinkSync(join(root, `${units}/sockets.target.wants/lambda-hello.socket`)), '../lambda-hello.socket');
  assert.match(read(`${units}/lambda-hello.socket`), /^ListenStream=\/run\/lambda\/hello\.sock\nAccept=yes$/m);
  assert.match(read(`${units}/lambda-hello@.service`), /^ExecStart=\/usr\/local\/libexec\/lambda\/http \/usr\/local\/opt\/lambda\/bin\/hello$/m);
  assert.match(read(`${units}/lambda-hello@.service`), /^RuntimeMaxSec=5s$/m, 'the default from the facts file');
  assert.match(read(`${units}/lambda-hello@.service`), /^DynamicUser=yes$/m);
  assert.deepEqual(list('out/usr/local/opt/nginx/lambda/functions'), ['hello.conf']);
  // With a URI part, nginx passes the normalised path, not the one the client wrote.
  assert.match(
    read('out/usr/local/opt/nginx/lambda/functions/hello.conf'),
    /^location \/hello\/ \{\n {4}proxy_pass http:\/\/unix:\/run\/lambda\/hello\.sock:\/hello\/;\n {4}include lambda\/location\.conf;\n\}/m,
  );
  for (const unit of ['lambda-hello.socket', 'lambda-hello@.service', 'lambda.slice']) assert.deepEqual(orderProblems(read(`${units}/${unit}`)), [], unit);
  const declared = Object.fromEntries(
    result.stdout
      .trim()
      .split('\n')
      .map((line) => line.split('\t')),
  );
  assert.deepEqual(declared, {
    '/usr/local/lib/systemd/system/lambda.slice': '/usr/local/etc/default/lambda.env',
    '/usr/local/lib/systemd/system/lambda-hello.socket': '/usr/local/opt/lambda/bin/hello',
    '/usr/local/lib/systemd/system/sockets.target.wants/lambda-hello.socket': '/usr/local/opt/lambda/bin/hello',
    '/usr/local/lib/systemd/system/lambda-hello@.service': '/usr/local/opt/lambda/bin/hello',
    '/usr/local/opt/nginx/lambda/functions/hello.conf': '/usr/local/opt/lambda/bin/hello',
  });
});

test('a function whose name systemd or nginx would misread fails the build, naming its file; the others are still made', () => {
  const { result, list } = generate({ 'opt/bin/hello': fn('echo hello'), 'opt/bin/bad name': fn('true'), 'opt/bin/-x': fn('true') });
  assert.equal(result.status, 1);
  assert.match(result.stderr, /^\/usr\/local\/opt\/lambda\/bin\/bad name: "bad name" is not a valid name/m);
  assert.match(result.stderr, /^\/usr\/local\/opt\/lambda\/bin\/-x: "-x" is not a valid name/m);
  assert.ok(list(units).includes('lambda-hello.socket'));
});

test('each request runs as a user of its own: User= names the instance, under a prefix of its function that fits a user name', () => {
  const long = 'a-function-with-a-name-longer-than-a-user-name-may-be';
  const { result, read } = generate({ 'opt/bin/one': fn('true'), 'opt/bin/two': fn('true'), [`opt/bin/${long}`]: fn('true') });
  assert.equal(result.status, 0, result.stderr);
  const user = (name: string) => /^User=(.*)$/m.exec(read(`${units}/lambda-${name}@.service`))?.[1];
  for (const name of ['one', 'two', long]) assert.match(user(name)!, /^_l[0-9a-f]{6}-%i$/, name);
  assert.equal(new Set(['one', 'two', long].map(user)).size, 3, 'functions do not share users');
  // The instance of an Accept=yes socket is the connection number, the peer's PID and UID: at most 2^32 - 1, the
  // kernel's largest PID and nginx's UID (www-data, 33; only that group may connect) fit in a user name's 31 characters.
  assert.ok(user(long)!.replace('%i', '4294967295-4194304-33').length <= 31);
  assert.equal(
    user('one'),
    generate({ 'opt/bin/one': fn('true') })
      .read(`${units}/lambda-one@.service`)
      .match(/^User=(.*)$/m)?.[1],
    'stable across runs',
  );
});

test('per-request limits and the slice of all functions come from the facts; a percentage is of the probed memory; a value systemd would refuse fails the build', () => {
  const { result, read } = generate({
    'opt/bin/hello': fn('echo hello'),
    'defaults.env': {
      content:
        'LAMBDA_MEMORY_MAX=10%\nLAMBDA_MEMORY_TOTAL=1073741824\nLAMBDA_CPU_QUOTA=50%\nLAMBDA_CONCURRENCY=8\nLAMBDA_SLICE_MEMORY_MAX=2G\nLAMBDA_SLICE_TASKS_MAX=300\nLAMBDA_SLICE_CPU_QUOTA=150%\n',
    },
  });
  assert.equal(result.status, 0, result.stderr);
  const service = section(read(`${units}/lambda-hello@.service`), 'Service');
  for (const line of ['Slice=lambda.slice', 'MemoryMax=10%', 'MemorySwapMax=0', 'TasksMax=32', 'CPUQuota=50%', 'LimitNPROC=32'])
    assert.ok(service.includes(line), line);
  assert.ok(service.includes(`LimitDATA=${Math.floor(1073741824 / 10 / 1024)}K`), 'an rlimit takes no percentage: 10% of the memory, in KiB');
  assert.match(read(`${units}/lambda-hello.socket`), /^MaxConnections=8$/m);
  const slice = section(read(`${units}/lambda.slice`), 'Slice');
  for (const line of ['MemoryMax=2G', 'MemorySwapMax=0', 'TasksMax=300', 'CPUQuota=150%', 'CPUWeight=50']) assert.ok(slice.includes(line), line);

  const unknown = generate({ 'opt/bin/hello': fn('echo hello'), 'defaults.env': { content: 'LAMBDA_MEMORY_MAX=10%\n' } });
  assert.equal(unknown.result.status, 0, unknown.result.stderr);
  assert.doesNotMatch(unknown.read(`${units}/lambda-hello@.service`), /LimitDATA/, 'no rlimit when the memory is not known');

  const defaults = generate({ 'opt/bin/hello': fn('echo hello') });
  assert.equal(defaults.result.stderr, '');
  assert.doesNotMatch(defaults.read(`${units}/lambda.slice`), /CPUQuota/, 'no CPU quota on the slice by default');
  for (const line of ['MemoryMax=256M', 'LimitDATA=256M', 'TasksMax=32', 'CPUQuota=100%'])
    assert.ok(section(defaults.read(`${units}/lambda-hello@.service`), 'Service').includes(line), line);

  const refused = generate({ 'opt/bin/hello': fn('echo hello'), 'defaults.env': { content: 'LAMBDA_TASKS_MAX=lots\nLAMBDA_IDLE_TIME=$(reboot)\n' } });
  assert.equal(refused.result.status, 1);
  assert.match(refused.result.stderr, /^\/usr\/local\/etc\/default\/lambda\.env: LAMBDA_TASKS_MAX=lots is not valid/m);
  assert.match(refused.result.stderr, /^\/usr\/local\/etc\/default\/lambda\.env: LAMBDA_IDLE_TIME=\$\(reboot\) is not valid/m);
});

test("a scale-to-zero front per declaration: socket, proxy service in its backend's own network, and the backing unit stops when it is no longer needed", () => {
  const { result, read, list } = generate({
    'opt/scale-to-zero/files.conf': { content: 'LISTEN=8080\nBACKEND=127.0.0.1:18080\nUNIT=python-files.service\n# the idle time comes from the facts\n' },
    'defaults.env': { content: 'LAMBDA_IDLE_TIME=2min\n' },
  });
  assert.equal(result.status, 0, result.stderr);
  assert.deepEqual(list(units), [
    'lambda.slice',
    'python-files.service.d',
    'scale-to-zero-files.service',
    'scale-to-zero-files.socket',
    'sockets.target.wants',
  ]);
  assert.match(read(`${units}/scale-to-zero-files.socket`), /^ListenStream=8080$/m);
  const front = read(`${units}/scale-to-zero-files.service`);
  assert.match(front, /^Requires=python-files\.service\nAfter=python-files\.service$/m);
  assert.ok(section(front, 'Unit').includes('JoinsNamespaceOf=python-files.service'));
  for (const line of [
    'ExecStart=/lib/systemd/systemd-socket-proxyd --exit-idle-time=2min 127.0.0.1:18080',
    'ExecStartPost=-+/usr/local/libexec/lambda/connect-once 127.0.0.1:8080',
    'PrivateNetwork=yes',
  ]) {
    assert.ok(section(front, 'Service').includes(line), line);
  }
  for (const unit of ['scale-to-zero-files.socket', 'scale-to-zero-files.service', 'python-files.service.d/50-scale-to-zero.conf'])
    assert.deepEqual(orderProblems(read(`${units}/${unit}`)), [], unit);
  const dropIn = read(`${units}/python-files.service.d/50-scale-to-zero.conf`);
  assert.ok(section(dropIn, 'Unit').includes('StopWhenUnneeded=yes'));
  assert.ok(section(dropIn, 'Service').includes('PrivateNetwork=yes'), 'the backend has a network of its own');
});

test('a scale-to-zero backend must be on loopback or a unix socket unless BACKEND_NETWORK=host says otherwise; LISTEN must be a port, an address or a path; each refusal names its file', () => {
  const good = generate({
    'opt/scale-to-zero/remote.conf': { content: 'LISTEN=[::]:8081\nBACKEND=192.0.2.10:80\nBACKEND_NETWORK=host\n' },
    'opt/scale-to-zero/socket.conf': { content: 'LISTEN=/run/socket-front.sock\nBACKEND=/run/socket/backend.sock\n' },
    'opt/scale-to-zero/v6.conf': { content: 'LISTEN=0.0.0.0:8082\nBACKEND=[::1]:18082\n' },
  });
  assert.equal(good.result.status, 0, good.result.stderr);
  const { read, list } = good;
  assert.deepEqual(
    list(units).filter((name) => name.endsWith('.service')),
    ['scale-to-zero-remote.service', 'scale-to-zero-socket.service', 'scale-to-zero-v6.service'],
  );
  const remote = read(`${units}/scale-to-zero-remote.service`);
  assert.doesNotMatch(remote, /PrivateNetwork|JoinsNamespaceOf/, "the machine's network, as asked");
  assert.doesNotMatch(read(`${units}/remote.service.d/50-scale-to-zero.conf`), /PrivateNetwork/);
  assert.match(remote, /^ExecStartPost=-\+\/usr\/local\/libexec\/lambda\/connect-once \[::1\]:8081$/m);
  assert.match(read(`${units}/scale-to-zero-socket.service`), /^ExecStartPost=-\+\/usr\/local\/libexec\/lambda\/connect-once \/run\/socket-front\.sock$/m);
  assert.match(read(`${units}/scale-to-zero-v6.service`), /^ExecStartPost=-\+\/usr\/local\/libexec\/lambda\/connect-once 127\.0\.0\.1:8082$/m);
  assert.match(read(`${units}/scale-to-zero-v6.service`), /^PrivateNetwork=yes$/m);

  const bad = generate({
    'opt/scale-to-zero/lan.conf': { content: 'LISTEN=8080\nBACKEND=192.0.2.10:80\n' },
    'opt/scale-to-zero/vsock.conf': { content: 'LISTEN=vsock:2:8083\nBACKEND=127.0.0.1:18083\n' },
    'opt/scale-to-zero/typo.conf': { content: 'LISTEN=8084\nBACKEND=127.0.0.1:18084\nBACKEND_NETWORK=public\n' },
    'opt/scale-to-zero/broken.conf': { content: 'LISTEN=8081\n' },
    'opt/scale-to-zero/spaces.conf': { content: 'LISTEN=8085\nBACKEND=127.0.0.1:1 --evil\n' },
  });
  assert.equal(bad.result.status, 1);
  const at = (name: string) => `^/usr/local/opt/lambda/scale-to-zero/${name}\\.conf: `;
  assert.match(
    bad.result.stderr,
    new RegExp(`${at('lan')}BACKEND=192\\.0\\.2\\.10:80 is not a loopback address or a socket path \\(BACKEND_NETWORK=host allows any\\)`, 'm'),
  );
  assert.match(bad.result.stderr, new RegExp(`${at('vsock')}LISTEN=vsock:2:8083 is not a port, ADDRESS:PORT or a socket path`, 'm'));
  assert.match(bad.result.stderr, new RegExp(`${at('typo')}BACKEND_NETWORK=public is neither private nor host`, 'm'));
  assert.match(bad.result.stderr, new RegExp(`${at('broken')}it needs LISTEN= and BACKEND=`, 'm'));
  assert.match(bad.result.stderr, new RegExp(`${at('spaces')}"127\\.0\\.0\\.1:1 --evil" holds white space`, 'm'));
});

/** The HTTP side run for one request (as nginx sends it) to a function named `hello`: the raw response and the journal's lines. */
function serve(body: string, requestText: string) {
  const dir = mkdtempSync(join(scratch, 'http-'));
  writeFileSync(join(dir, 'hello'), `#!/bin/bash\n${body}\n`);
  chmodSync(join(dir, 'hello'), 0o755);
  const result = spawnSync('bash', [join(libexec, 'http'), join(dir, 'hello')], {
    input: requestText,
    maxBuffer: 1 << 26,
    env: { PATH: process.env.PATH, TMPDIR: dir },
  });
  return { status: result.status, response: result.stdout, stderr: result.stderr.toString() };
}
const nginxRequest = (path: string, headers: string[] = [], body = '') =>
  [
    `GET ${path} HTTP/1.1`,
    'Host: example.org',
    'X-Real-IP: 192.0.2.7',
    'X-Forwarded-For: 192.0.2.7',
    'Connection: close',
    ...headers,
    `Content-Length: ${body.length}`,
    '',
    body,
  ].join('\r\n');
/** Head and body of a response; a chunked body is decoded, and `complete` says whether its last chunk came. */
function parse(response: Buffer) {
  const end = response.indexOf('\r\n\r\n');
  const head = response.subarray(0, end).toString();
  let rest = response.subarray(end + 4);
  if (!/^Transfer-Encoding: chunked$/m.test(head)) return { head, body: rest, complete: true };
  const parts: Buffer[] = [];
  for (;;) {
    const line = rest.indexOf('\r\n');
    if (line < 0) return { head, body: Buffer.concat(parts), complete: false };
    const size = parseInt(rest.subarray(0, line).toString(), 16);
    if (size === 0) return { head, body: Buffer.concat(parts), complete: rest.subarray(line).toString() === '\r\n\r\n' };
    parts.push(rest.subarray(line + 2, line + 2 + size));
    rest = rest.subarray(line + 2 + size + 2);
  }
}

test("the HTTP side: CGI variables from nginx's request (REMOTE_ADDR from X-Real-IP, PATH_INFO after /<name>), the body on stdin, a whole answer with its length", () => {
  const { status, response } = serve(
    'env | grep -E "^(REMOTE_ADDR|PATH_INFO|SCRIPT_NAME|QUERY_STRING|REQUEST_URI|HTTP_[A-Z_]+)=" | sort\ncat',
    nginxRequest('/hello/a/b?x=1', ['Proxy: http://evil', 'Authorization: Bearer t'], 'the body'),
  );
  assert.equal(status, 0);
  const body = [
    'HTTP_AUTHORIZATION=Bearer t',
    'HTTP_CONNECTION=close',
    'HTTP_HOST=example.org',
    'HTTP_X_FORWARDED_FOR=192.0.2.7',
    'PATH_INFO=/a/b',
    'QUERY_STRING=x=1',
    'REMOTE_ADDR=192.0.2.7',
    'REQUEST_URI=/hello/a/b?x=1',
    'SCRIPT_NAME=/hello',
    'the body',
  ].join('\n');
  assert.equal(
    response.toString(),
    `HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`,
  );
});

test('the HTTP side: a failed function is a 500 with what it wrote; a body of exactly a MiB is still whole', () => {
  const failed = serve('echo partial\nexit 3', nginxRequest('/hello/'));
  assert.equal(
    failed.response.toString(),
    'HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 8\r\nConnection: close\r\n\r\npartial\n',
  );
  assert.match(failed.stderr, /hello exited with status 3/);
  const mib = parse(serve('head -c 1M /dev/zero', nginxRequest('/hello/')).response);
  assert.match(mib.head, /^HTTP\/1\.1 200 OK\r\n[\s\S]*Content-Length: 1048576\r\n/);
  assert.equal(mib.body.length, 1 << 20);
});

test('the HTTP side: a longer body streams chunked, at most 5 MiB of it kept; a function that fails after the start of its response leaves it without its last chunk', () => {
  const dir = mkdtempSync(join(scratch, 'watch-'));
  // While it writes the second half, the function looks at what the HTTP side keeps in the temporary directory.
  const long = serve(
    `head -c 12M /dev/urandom | tee ${dir}/sent\nsleep 0.2\ndu -sk "$TMPDIR" | cut -f1 > ${dir}/kept\nhead -c 12M /dev/urandom | tee -a ${dir}/sent`,
    nginxRequest('/hello/'),
  );
  const streamed = parse(long.response);
  assert.match(streamed.head, /^HTTP\/1\.1 200 OK\r\n[\s\S]*Transfer-Encoding: chunked\r\n/);
  assert.doesNotMatch(streamed.head, /Content-Length/);
  assert.ok(streamed.complete);
  assert.ok(streamed.body.equals(readFileSync(join(dir, 'sent'))), 'the 24 MiB as written');
  assert.ok(Number(readFileSync(join(dir, 'kept'), 'utf8')) <= 5 * 1024 + 16, `kept ${readFileSync(join(dir, 'kept'), 'utf8')} KiB`);

  const cut = serve('head -c 3M /dev/zero\nexit 4', nginxRequest('/hello/'));
  const parsed = parse(cut.response);
  assert.match(parsed.head, /^HTTP\/1\.1 200 OK\r\n/);
  assert.equal(parsed.complete, false, 'no last chunk');
  assert.match(cut.stderr, /hello exited with status 4 after the start of its response was sent/);
});
