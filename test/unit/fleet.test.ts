// Fleet generators (FORMAT.md section 7, `# fleet:`): a generator reads what the other machines selecting its layers
// offered in their last build, and one `homecloud build` builds a reader again when what it read changed in that build.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { test } from 'node:test';
import { makeRepo, preludeOnlyBase, runCli, treeFile, writeFiles, type FixtureFile } from '../helpers/repo.ts';

const generators = 'layers/mesh/usr/local/opt/initd/generators';
/** Writes, per member of the fleet, a file of what the build told it: its address, its layers and its offers. */
const reader: FixtureFile = {
  mode: 0o755,
  content: `#!/bin/bash
# Lists the mesh's machines and what they offered.
# inputs: /usr/local/etc/mesh.conf
# fleet: mesh
set -euo pipefail
mkdir -p "$2/usr/local/share/mesh"
for dir in "$HOMECLOUD_FLEET"/*/; do
  member=\${dir%/}; member=\${member##*/}
  {
    echo "address $(cat "$dir/address")"
    echo "layers $(tr '\\n' ' ' < "$dir/layers")"
    cat "$dir/offers"
  } > "$2/usr/local/share/mesh/$member"
  printf '%s\\t%s\\n' "/usr/local/share/mesh/$member" /usr/local/etc/mesh.conf
done
`,
};
/** Offers the machine's color, from a file of its tree. */
const offerer = (line = 'offer\\tcolor\\t%s\\t/usr/local/etc/color\\n'): FixtureFile => ({
  mode: 0o755,
  content: `#!/bin/bash
# Offers this machine's color.
# inputs: /usr/local/etc/color
set -euo pipefail
printf '${line}' "$(cat "$1/usr/local/etc/color")"
`,
});

/** Two machines of the mesh, and one that is not in it (it selects another layer with the same generators' names). */
function repo(extra: Record<string, FixtureFile> = {}) {
  return makeRepo({
    ...preludeOnlyBase,
    'inventory.json': JSON.stringify({ h1: { host: '192.0.2.1' }, h2: { host: '2001:db8::2' } }),
    'layers/mesh/usr/local/etc/mesh.conf': 'on\n',
    [`${generators}/mesh`]: reader,
    [`${generators}/color`]: offerer(),
    'layers/solo/usr/local/opt/initd/generators/color': offerer(),
    'machines/h1/usr/local/opt/initd/layers/10.txt': '+ mesh\n',
    'machines/h2/usr/local/opt/initd/layers/10.txt': '+ mesh\n',
    'machines/h3/usr/local/opt/initd/layers/10.txt': '+ solo\n',
    'machines/h1/usr/local/etc/color': 'red\n',
    'machines/h2/usr/local/etc/color': 'blue\n',
    'machines/h3/usr/local/etc/color': 'green\n',
    ...extra,
  });
}

const seen = (root: string, machine: string, member: string) => readFileSync(treeFile(root, machine, `/usr/local/share/mesh/${member}`), 'utf8');

test('one build leaves each machine of the fleet with what the others offered in it; then it is up to date; a change reaches the others', () => {
  const root = repo();
  const first = runCli(['-C', root, 'build']);
  assert.equal(first.status, 0, first.stdout + first.stderr);
  // Each sees both members, itself included, with what they offered in this very build (a second pass built them).
  for (const machine of ['h1', 'h2']) {
    assert.deepEqual(readdirSync(treeFile(root, machine, '/usr/local/share/mesh')).sort(), ['h1', 'h2'], 'h3 selects no layer of the fleet');
    assert.equal(seen(root, machine, 'h1'), 'address 192.0.2.1\nlayers _ mesh \ncolor\tred\n');
    assert.equal(seen(root, machine, 'h2'), 'address 2001:db8::2\nlayers _ mesh \ncolor\tblue\n');
  }
  assert.ok(!existsSync(treeFile(root, 'h3', '/usr/local/share/mesh')));
  const again = runCli(['-C', root, 'build']);
  assert.equal(again.status, 0, again.stdout + again.stderr);
  assert.match(again.stdout, /All 3 machines are up to date/);

  writeFiles(root, { 'machines/h2/usr/local/etc/color': 'green\n' });
  const changed = runCli(['-C', root, 'build']);
  assert.equal(changed.status, 0, changed.stdout + changed.stderr);
  assert.match(changed.stdout, /Built 2 of 3 machines/, 'h2, whose offer changed, and h1, which reads it; not h3');
  assert.match(seen(root, 'h1', 'h2'), /^color\tgreen$/m);
  assert.match(seen(root, 'h2', 'h2'), /^color\tgreen$/m);
  assert.match(runCli(['-C', root, 'build']).stdout, /All 3 machines are up to date/);

  // A machine that leaves the fleet leaves the others' view of it.
  writeFiles(root, { 'machines/h2/usr/local/opt/initd/layers/10.txt': '+ solo\n' });
  const left = runCli(['-C', root, 'build']);
  assert.equal(left.status, 0, left.stdout + left.stderr);
  assert.deepEqual(readdirSync(treeFile(root, 'h1', '/usr/local/share/mesh')), ['h1']);
  assert.ok(!existsSync(treeFile(root, 'h2', '/usr/local/share/mesh')));
});

test('building one machine of the fleet reads what the others offered in their last build', () => {
  const root = repo();
  assert.equal(runCli(['-C', root, 'build', 'h2']).status, 0);
  const one = runCli(['-C', root, 'build', 'h1']);
  assert.equal(one.status, 0, one.stdout + one.stderr);
  assert.match(seen(root, 'h1', 'h2'), /^color\tblue$/m);
  assert.match(seen(root, 'h1', 'h1'), /^color\tred$/m, 'its own offer, from the pass before');
});

test('an offer line with a bad key or a control character in its value fails the build, naming the generator', () => {
  const cases: [string, RegExp][] = [
    ['offer\\tbad key\\t%s\\t/usr/local/etc/color\\n', /the key is a word/],
    ['offer\\t-color\\t%s\\t/usr/local/etc/color\\n', /the key is a word/],
    ['offer\\tcolor\\t%s\\001\\t/usr/local/etc/color\\n', /the value holds a control character/],
    ['offer\\tcolor\\t%s\\r\\t/usr/local/etc/color\\n', /the value holds a control character/],
    ['offer\\tcolor\\t%s\\t/usr/local/etc/other\\n', /which is none of its inputs/],
    ['offer\\tcolor\\t%s\\n', /has 3 fields, not 4/],
  ];
  for (const [line, message] of cases) {
    const root = repo({ [`${generators}/color`]: offerer(line) });
    const result = runCli(['-C', root, 'build']);
    const output = result.stdout + result.stderr;
    assert.equal(result.status, 1, `${line}: ${output}`);
    assert.match(output, /the generator \/usr\/local\/opt\/initd\/generators\/color printed a line homecloud refuses/, line);
    assert.match(output, message, line);
    assert.match(output, /layers\/mesh\/usr\/local\/opt\/initd\/generators\/color/, `${line}: the repository file of the generator`);
  }
});

test('a machine another one hosts (a container) is no member of the fleet, though it selects the layer', () => {
  const root = repo({
    'layers/host/usr/local/opt/initd/generators/host': {
      mode: 0o755,
      content: `#!/bin/bash
# Hosts the container c1.
# inputs: /usr/local/etc/color
printf 'machine\\tc1\\t10.250.7.9\\t/var/lib/machines/c1/etc/ssh/ssh_host_ed25519_key.pub\\t/usr/local/etc/color\\n'
`,
    },
    'machines/h1/usr/local/opt/initd/layers/10.txt': '+ mesh\n+ host\n',
    'machines/c1/usr/local/opt/initd/layers/10.txt': '+ mesh\n',
    'machines/c1/usr/local/etc/color': 'white\n',
  });
  const result = runCli(['-C', root, 'build']);
  assert.equal(result.status, 0, result.stdout + result.stderr);
  for (const machine of ['h1', 'h2', 'c1']) assert.deepEqual(readdirSync(treeFile(root, machine, '/usr/local/share/mesh')).sort(), ['h1', 'h2'], machine);
  assert.match(runCli(['-C', root, 'build']).stdout, /All 4 machines are up to date/);
});
