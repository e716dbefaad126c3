// The Ansible comparison's generator (bench/ansible): the homecloud repository
// and the Ansible project it writes describe the same machines. homecloud's
// side is built for real; Ansible's is read from its playbook: trees, Jinja2
// templates (rendered with Jinja2 as Ansible configures it), links, handlers.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { lstatSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { writeHomecloudRepository } from '../../bench/ansible/homecloud.ts';
import { playbook, transfers, writeAnsibleProject, type Transfer } from '../../bench/ansible/playbook.ts';
import { desiredState, renderTemplate } from '../../bench/ansible/state.ts';
import type { Manifest, ManifestEntries } from '../../src/build/manifest.ts';
import { reconcile } from '../../src/plan/reconcile.ts';
import { build, makeRepo, manifestOf } from '../helpers/repo.ts';

const state = desiredState();
const repo = makeRepo({});
const project = makeRepo({});
writeHomecloudRepository(repo, state);
writeAnsibleProject(project, state);
const report = await build(repo);

const sha256 = (data: string | Buffer) => createHash('sha256').update(data).digest('hex');
const octal = (mode: number) => `0${(mode & 0o7777).toString(8)}`;
/** Files and links only: directories are the fairness check's business, on real machines. */
const deployed = (entries: ManifestEntries) => Object.fromEntries(Object.entries(entries).filter(([, entry]) => entry.type !== 'dir'));

interface AnsibleTask {
  name: string;
  loop?: Record<string, string>[];
  notify?: string[];
  'ansible.builtin.copy'?: { src: string; dest: string };
  'ansible.posix.synchronize'?: { src: string; dest: string };
  'ansible.builtin.template'?: object;
  'ansible.builtin.file'?: { state: string };
}

/** A Python with Jinja2 (Debian's python3-jinja2, which Ansible uses), if there is one. */
function jinjaPython(): string | undefined {
  return ['/usr/bin/python3', 'python3'].find((python) => spawnSync(python, ['-c', 'import jinja2'], { stdio: 'ignore' }).status === 0);
}

/** Render every template for every machine as Ansible's template module does: trim_blocks, trailing newline kept, undefined is an error. */
function renderJinja(python: string, jobs: { template: string; vars: Record<string, unknown> }[]): string[] {
  const script = `
import json, sys, jinja2
env = jinja2.Environment(loader=jinja2.FileSystemLoader(sys.argv[1]), trim_blocks=True, keep_trailing_newline=True, undefined=jinja2.StrictUndefined)
print(json.dumps([env.get_template(job['template']).render(**job['vars']) for job in json.load(sys.stdin)]))`;
  const result = spawnSync(python, ['-c', script, join(project, 'templates')], { input: JSON.stringify(jobs), encoding: 'utf8' });
  assert.equal(result.status, 0, result.stderr);
  return JSON.parse(result.stdout) as string[];
}

/** Files under a local tree, as manifest entries at their deployed paths. */
function tree(local: string, dest: string, into: ManifestEntries): void {
  const stat = lstatSync(local);
  if (stat.isDirectory()) {
    for (const name of readdirSync(local)) tree(join(local, name), join(dest, name), into);
  } else if (stat.isSymbolicLink()) into[dest] = { type: 'link', target: readlinkSync(local) };
  else into[dest] = { type: 'file', mode: octal(stat.mode), sha256: sha256(readFileSync(local)) };
}

/**
 * What the playbook puts on a machine (files and links), and the handlers
 * that a change of each path notifies.
 */
function ansibleDeploys(transfer: Transfer, render: (src: string) => string | undefined) {
  const entries: ManifestEntries = {};
  const notifies = new Map<string, string[]>();
  const tasks = playbook(state, transfer)[0]!.tasks as AnsibleTask[];
  for (const task of tasks) {
    const before = new Set(Object.keys(entries));
    const move = task['ansible.builtin.copy'] ?? task['ansible.posix.synchronize'];
    if (move) tree(join(project, 'files', move.src), move.dest.replace(/\/$/, ''), entries);
    if (task['ansible.builtin.template']) {
      for (const item of task.loop!) {
        const output = render(item.src!);
        if (output !== undefined) entries[item.dest!] = { type: 'file', mode: item.mode!, sha256: sha256(output) };
      }
    }
    if (task['ansible.builtin.file']?.state === 'link') for (const item of task.loop!) entries[item.path!] = { type: 'link', target: item.target! };
    for (const path of Object.keys(entries)) if (!before.has(path)) notifies.set(path, task.notify ?? []);
  }
  return { entries, notifies };
}

test('the generated state has the shape the comparison promises: 3 machines, about 300 files, 30 templates, 5 services', () => {
  assert.equal(state.machines.length, 3);
  const files = state.files.length + state.templates.length + state.links.length;
  assert.ok(files >= 280 && files <= 320, `${files} files`);
  assert.equal(state.templates.length, 30);
  assert.equal(state.services.length, 5);
  assert.ok(state.services.some((s) => s.reloads) && state.services.some((s) => !s.reloads));
});

test('homecloud builds, for every machine, exactly the files, modes, contents and links of the desired state', () => {
  for (const result of report.machines) assert.equal(result.status, 'built', result.error?.toString());
  for (const machine of state.machines) {
    const expected: ManifestEntries = {};
    for (const file of state.files) expected[file.path] = { type: 'file', mode: octal(file.mode), sha256: sha256(file.content) };
    for (const template of state.templates)
      expected[template.path] = { type: 'file', mode: octal(template.mode), sha256: sha256(renderTemplate(template, machine, state.facts[machine]!)) };
    for (const link of state.links) expected[link.path] = { type: 'link', target: link.target };
    assert.deepEqual(deployed(manifestOf(repo, machine).entries), expected, machine);
  }
});

test("Ansible's templates render, with Jinja2 as Ansible sets it up, byte for byte what homecloud's m4 templates render", (t) => {
  const python = jinjaPython();
  if (!python) {
    if (process.env.CI === 'true') assert.fail('Jinja2 for Python is missing: apt-get install python3-jinja2');
    t.skip('no Python with Jinja2 (apt-get install python3-jinja2)');
    return;
  }
  const jobs = state.machines.flatMap((machine) => state.templates.map((template) => ({ machine, template })));
  const outputs = renderJinja(
    python,
    jobs.map(({ machine, template }) => ({ template: `${template.path.slice(1)}.j2`, vars: { ...state.facts[machine], inventory_hostname: machine } })),
  );
  jobs.forEach(({ machine, template }, i) => {
    const built = readFileSync(join(repo, 'var/build', machine, 'tree', template.path), 'utf8');
    assert.equal(outputs[i], built, `${template.path} on ${machine}`);
  });
});

for (const transfer of transfers) {
  test(`the ${transfer} playbook deploys the paths, modes and contents homecloud deploys, and notifies the handlers of homecloud's reloads`, () => {
    for (const machine of state.machines) {
      const next = manifestOf(repo, machine);
      // Templates are compared above; here their expected output stands in for Jinja2.
      const render = (src: string) => {
        const template = state.templates.find((t) => `${t.path.slice(1)}.j2` === src);
        return template && renderTemplate(template, machine, state.facts[machine]!);
      };
      const { entries, notifies } = ansibleDeploys(transfer, render);
      assert.deepEqual(entries, deployed(next.entries), machine);

      // A change of any one file: homecloud's reconcile acts on the units whose handlers the Ansible task notifies.
      const tree = join(repo, 'var/build', machine, 'tree');
      for (const [path, entry] of Object.entries(next.entries)) {
        if (entry.type !== 'file') continue;
        const previous: Manifest = { ...next, entries: { ...next.entries, [path]: { ...entry, sha256: 'before' } } };
        const plan = reconcile(previous, next, (p) => readFileSync(join(tree, p), 'utf8'));
        const handlers = notifies.get(path) ?? [];
        const asUnits = handlers
          .filter((h) => h !== 'daemon-reload')
          .map((h) => h.replace(/^reload (.+)$/, 'reload-or-restart $1.service').replace(/^restart (.+)$/, 'restart $1.service'));
        assert.deepEqual(
          plan.units.map((u) => `${u.action} ${u.unit}`),
          asUnits,
          `${path} on ${machine}`,
        );
        assert.equal(plan.daemonReload, handlers.includes('daemon-reload'), `daemon-reload after ${path} changed`);
      }
    }
  });
}
