// One deploy at a time per machine: two deploys (or deploy, rollback and clobber) never mix;
// the second waits with a message naming the first, or gives up after --wait seconds.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { hostname } from 'node:os';
import { test } from 'node:test';
import { assertMachineIsItsGeneration } from '../helpers/invariant.ts';
import { cliPath, makeRepo, preludeOnlyBase, writeFiles, type FixtureFile } from '../helpers/repo.ts';
import { sandboxCli, testSandbox } from '../helpers/sandbox.ts';

const { box, skip } = testSandbox('concurrency');

/** A repository whose files and service all say `tag`. */
function repository(tag: string): string {
  const files: Record<string, FixtureFile> = {
    ...preludeOnlyBase,
    'machines/m/usr/local/opt/initd/layers/10.txt': '+ c\n',
    'layers/c/usr/local/lib/systemd/system/tagged.service': `[Service]\nExecStart=/bin/sleep infinity\nEnvironmentFile=/usr/local/etc/default/tagged.env\n`,
    'layers/c/usr/local/lib/systemd/system/multi-user.target.wants/tagged.service': { link: '../tagged.service' },
    'layers/c/usr/local/etc/default/tagged.env': `TAG=${tag}\n`,
  };
  for (let i = 0; i < 40; i++) files[`layers/c/usr/local/share/tagged/${i % 4}/f${i}`] = `${tag} ${i}\n`;
  if (tag === 'B') files['layers/c/usr/local/share/tagged/only-in-b'] = 'B\n';
  else files['layers/c/usr/local/share/tagged/only-in-a'] = 'A\n';
  return makeRepo(files);
}

const repos = { A: repository('A'), B: repository('B') };
const on = (command: string) => box!.ssh('m', command).stdout;

/** Start a CLI run now; resolves when it ends. */
function start(repo: string, args: string[]) {
  const child = spawn(process.execPath, [cliPath, '-C', repo, '--sandbox', ...args], {
    env: { ...process.env, HOMECLOUD_SANDBOX: box!.paths.home, NO_COLOR: '1' },
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  return {
    output: () => stdout,
    done: new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) =>
      child.on('close', (status) => resolve({ status, stdout, stderr })),
    ),
  };
}

const lastGeneration = () => Number(on('cat /var/lib/homecloud/generations/last'));
/** Which repository the machine is now: every tagged file and the service's environment say it. */
const machineIs = () =>
  on('cat /usr/local/etc/default/tagged.env; cat /usr/local/share/tagged/*/f* | cut -d" " -f1 | sort -u; ls /usr/local/share/tagged | grep only-in');

async function waitFor(check: () => boolean, what: string, seconds = 30): Promise<void> {
  const deadline = Date.now() + seconds * 1000;
  while (!check()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

test(
  'two deploys of different content started at the same moment never mix: one waits for the other, and the machine is exactly the one that committed last',
  { skip },
  async () => {
    await box!.up(['m']);
    assert.equal(sandboxCli(box, repos.A)(['deploy', 'm']).status, 0);
    let waits = 0;
    for (let round = 0; round < 5; round++) {
      const before = lastGeneration();
      const [a, b] = [start(repos.A, ['deploy', 'm']), start(repos.B, ['deploy', 'm'])];
      const [ra, rb] = await Promise.all([a.done, b.done]);
      assert.equal(ra.status, 0, `round ${round}, A: ${ra.stdout}${ra.stderr}`);
      assert.equal(rb.status, 0, `round ${round}, B: ${rb.stdout}${rb.stderr}`);
      waits += [ra, rb].filter((r) => /waiting for the deploy started at/.test(r.stdout)).length;
      // The last generation a deploy committed (a deploy may go in rounds).
      const generation = (r: { stdout: string }) => Number([...r.stdout.matchAll(/generation (\d+)/g)].pop()?.[1] ?? 0);
      const ga = generation(ra);
      const gb = generation(rb);
      // Each deploy planned against what the other committed: the generations follow each other (one has nothing to do when it goes first on a machine that already is it).
      const committed = [ga, gb].filter((g) => g > 0).sort((x, y) => x - y);
      assert.ok(committed.length > 0, `round ${round}: something was deployed`);
      assert.deepEqual(
        committed,
        committed.map((_, i) => before + 1 + i),
        `round ${round}: generations ${ga} and ${gb} after ${before}`,
      );
      assertMachineIsItsGeneration(box!, 'm', `round ${round}`);
      const last = ga > gb ? 'A' : 'B';
      assert.equal(machineIs(), `TAG=${last}\n${last}\nonly-in-${last.toLowerCase()}`, `round ${round}: the machine is all ${last}`);
      assert.equal(
        on('tr "\\0" "\\n" < /proc/$(systemctl show -p MainPID --value tagged.service)/environ | grep ^TAG=; systemctl is-active tagged.service'),
        `TAG=${last}\nactive`,
        'the service runs with what it reads',
      );
      assert.match(sandboxCli(box, repos[last])(['deploy', 'm']).stdout, /Nothing to do/);
    }
    assert.ok(waits > 0, 'in five rounds some deploy waited for the other');
  },
);

test('a deploy that waits longer than --wait gives up with exit 1, naming the deploy that holds the machine', { skip }, async () => {
  // A's apply takes a while: its hook sleeps.
  writeFiles(repos.A, { 'machines/m/usr/local/opt/initd/Makefile': 'all:\n\tsleep 4\n', 'layers/c/usr/local/etc/default/tagged.env': 'TAG=A\nSLOW=1\n' });
  const slow = start(repos.A, ['--json', 'deploy', 'm']);
  await waitFor(() => slow.output().includes('"phase":"hook"'), "A's hook");
  const impatient = sandboxCli(box, repos.B)(['deploy', '--wait', '1', 'm']);
  assert.equal(impatient.status, 1, impatient.stdout + impatient.stderr);
  const holder = new RegExp(`the deploy started at \\d\\d:\\d\\d:\\d\\d from host ${hostname()} by \\S+`);
  assert.match(impatient.stdout, new RegExp(`m\\s+waiting for ${holder.source}`));
  assert.match(impatient.stderr, new RegExp(`${holder.source} still holds m after 1 s: gave up waiting`));
  const finished = await slow.done;
  assert.equal(finished.status, 0, finished.stderr);
  assertMachineIsItsGeneration(box!, 'm', 'after the slow deploy');
  assert.match(on('cat /usr/local/etc/default/tagged.env'), /SLOW=1/);
});

test('rollback and clobber wait for a running deploy, then do their work on what it committed', { skip }, async () => {
  writeFiles(repos.A, { 'layers/c/usr/local/etc/default/tagged.env': 'TAG=A\nSLOW=2\n' });
  const slow = start(repos.A, ['--json', 'deploy', 'm']);
  await waitFor(() => slow.output().includes('"phase":"hook"'), "A's hook");
  const committed = lastGeneration() + 1;
  const rollback = await start(repos.A, ['rollback', 'm']).done;
  assert.equal(rollback.status, 0, rollback.stderr);
  assert.match(rollback.stderr, /m: waiting for the deploy started at/);
  assert.match(rollback.stdout, new RegExp(`generation ${committed - 1} is back as generation ${committed + 1}`));
  assert.equal((await slow.done).status, 0);
  assertMachineIsItsGeneration(box!, 'm', 'after the rollback');
  assert.match(on('cat /usr/local/etc/default/tagged.env'), /SLOW=1/);

  writeFiles(repos.A, { 'layers/c/usr/local/etc/default/tagged.env': 'TAG=A\nSLOW=3\n' });
  const another = start(repos.A, ['--json', 'deploy', 'm']);
  await waitFor(() => another.output().includes('"phase":"hook"'), "A's hook");
  const clobber = await start(repos.B, ['clobber', '--yes', 'm']).done;
  assert.equal(clobber.status, 0, clobber.stderr);
  assert.match(clobber.stderr, /m: waiting for the deploy started at/);
  assert.equal((await another.done).status, 0);
  assert.equal(on('ls /usr/local/share/tagged /var/lib/homecloud 2>&1 | grep -c "No such file"'), '2', 'clobber removed what the deploy placed, after it');
});
