// The desired state as an Ansible project, written the way a careful Ansible
// user would: static trees copied or synchronized, Jinja2 templates, a handler
// per service notified by exactly the files that service reads, links with the
// file module. One playbook per way of moving files (copy, synchronize).
import { dirname, join } from 'node:path';
import { jinjaTemplate, unitDir, type DesiredState, type Group, type Service } from './state.ts';
import { writeText } from './write.ts';

export type Transfer = 'copy' | 'synchronize';
export const transfers: Transfer[] = ['synchronize', 'copy'];

export const playbookName = (transfer: Transfer) => `site-${transfer}.yml`;

/** Where the static files of a group live under files/: the shared tree, or the service's own. */
function treeOf(group: Group): string {
  return group === '_' || group === 'machine' || group === 'common' ? 'common' : group;
}

function isUnit(path: string): boolean {
  return path.startsWith(`${unitDir}/`);
}

const octal = (mode: number) => `0${mode.toString(8)}`;

/** A task moving a local file or tree (trailing slash: its contents) to the machines. */
function transferTask(transfer: Transfer, name: string, src: string, dest: string, notify?: string[]): Record<string, unknown> {
  const module =
    transfer === 'copy'
      ? { 'ansible.builtin.copy': { src, dest, mode: 'preserve' } }
      : // rsync over the play's own SSH settings and master connection, checking host keys; no compression on a LAN.
        // Directory times are left alone: templates write into the same directories, and rsync would report (and redo) them on every run.
        {
          'ansible.posix.synchronize': {
            src,
            dest,
            archive: true,
            compress: false,
            use_ssh_args: true,
            ssh_connection_multiplexing: true,
            verify_host: true,
            rsync_opts: ['--omit-dir-times'],
          },
        };
  return { name, ...module, ...(notify ? { notify } : {}) };
}

const handlerName = (service: Service) => `${service.reloads ? 'reload' : 'restart'} ${service.name}`;

/** The playbook as data (YAML is written from it; the unit test reads it). */
export function playbook(state: DesiredState, transfer: Transfer): Record<string, unknown>[] {
  // The template module and single-file transfers need their directory; trees make theirs.
  const treeDirs = new Set(state.files.filter((f) => !isUnit(f.path)).flatMap((f) => ancestors(f.path)));
  const needed = [...state.templates, ...state.links, ...state.files.filter((f) => isUnit(f.path))].map((entry) => dirname(entry.path));
  const directories = [...new Set(needed.filter((dir) => !treeDirs.has(dir)))].sort();
  const templateItems = (group: Group) =>
    state.templates.filter((t) => treeOf(t.group) === group).map((t) => ({ src: `${t.path.slice(1)}.j2`, dest: t.path, mode: octal(t.mode) }));
  const templateTask = (group: Group, notify?: string[]) => ({
    name: `${group} templates`,
    'ansible.builtin.template': { src: '{{ item.src }}', dest: '{{ item.dest }}', mode: '{{ item.mode }}' },
    loop: templateItems(group),
    loop_control: { label: '{{ item.dest }}' },
    ...(notify ? { notify } : {}),
  });

  const tasks: Record<string, unknown>[] = [
    {
      name: 'directories of templates, units and links',
      'ansible.builtin.file': { path: '{{ item }}', state: 'directory', mode: '0755' },
      loop: directories,
    },
    transferTask(transfer, 'common files', 'common/usr/local/', '/usr/local/'),
    templateTask('common'),
  ];
  for (const s of state.services) {
    const unit = state.files.find((f) => f.group === s.name && isUnit(f.path))!;
    tasks.push(
      transferTask(transfer, `${s.name} unit`, `units/${s.name}.service`, unit.path, ['daemon-reload', `restart ${s.name}`]),
      transferTask(transfer, `${s.name} files`, `${s.name}/usr/local/`, '/usr/local/', [handlerName(s)]),
      templateTask(s.name, [handlerName(s)]),
    );
  }
  tasks.push({
    name: 'links',
    'ansible.builtin.file': { src: '{{ item.target }}', dest: '{{ item.path }}', state: 'link' },
    loop: state.links.map((l) => ({ path: l.path, target: l.target })),
    loop_control: { label: '{{ item.path }}' },
    notify: ['daemon-reload'],
  });

  // Handlers run in this order: systemd reads changed units before anything restarts.
  const handlers: Record<string, unknown>[] = [{ name: 'daemon-reload', 'ansible.builtin.systemd': { daemon_reload: true } }];
  for (const s of state.services) {
    handlers.push({ name: `restart ${s.name}`, 'ansible.builtin.systemd': { name: `${s.name}.service`, state: 'restarted' } });
    if (s.reloads) handlers.push({ name: `reload ${s.name}`, 'ansible.builtin.systemd': { name: `${s.name}.service`, state: 'reloaded' } });
  }
  return [{ name: 'the benchmark desired state', hosts: 'all', gather_facts: false, tasks, handlers }];
}

/** /a/b/c -> /a, /a/b (directories a file in a tree brings with it). */
function ancestors(path: string): string[] {
  const parts = path.split('/').slice(1, -1);
  return parts.map((_, i) => `/${parts.slice(0, i + 1).join('/')}`);
}

/** files/, templates/, host_vars/ and both playbooks. Connection settings come separately, once machines exist. */
export function writeAnsibleProject(root: string, state: DesiredState): void {
  for (const machine of state.machines) writeText(join(root, 'host_vars', `${machine}.json`), JSON.stringify(state.facts[machine], null, 1) + '\n');
  for (const file of state.files) {
    const path = isUnit(file.path) ? join(root, 'files/units', file.path.slice(unitDir.length)) : join(root, 'files', treeOf(file.group), file.path);
    writeText(path, file.content, file.mode);
  }
  for (const template of state.templates) writeText(join(root, 'templates', `${template.path}.j2`), jinjaTemplate(template));
  for (const transfer of transfers)
    writeText(join(root, playbookName(transfer)), `# Generated by bench/ansible (homecloud's Ansible comparison).\n${toYaml(playbook(state, transfer))}\n`);
}

/** Where the Ansible project keeps a deployed static file (for the one-change run). */
export function ansibleSource(root: string, state: DesiredState, path: string): string {
  const file = state.files.find((f) => f.path === path);
  if (!file || isUnit(path)) throw new Error(`${path} is not a static file of a tree`);
  return join(root, 'files', treeOf(file.group), path);
}

export interface Connection {
  /** Machine name -> address. */
  hosts: Record<string, string>;
  /** ssh options that reach them (key, known_hosts, host key checking). */
  sshOptions: string[];
  /** Where the master connections' sockets go (short: a socket path has a length limit). */
  controlDir: string;
}

/**
 * inventory.ini and ansible.cfg, tuned as the comparison should be: pipelining,
 * no fact gathering, a fork per machine or more, SSH master connections kept
 * between runs, a known Python (no interpreter discovery round trip).
 */
export function writeAnsibleConnection(root: string, connection: Connection): void {
  const inventory = Object.entries(connection.hosts).map(([name, address]) => `${name} ansible_host=${address} ansible_user=root\n`);
  writeText(join(root, 'inventory.ini'), `[bench]\n${inventory.join('')}`);
  const sshArgs = ['-o', 'ControlMaster=auto', '-o', 'ControlPersist=60s', '-o', `ControlPath=${connection.controlDir}/%C`, ...connection.sshOptions];
  writeText(
    join(root, 'ansible.cfg'),
    `[defaults]
inventory = inventory.ini
forks = ${Math.max(10, Object.keys(connection.hosts).length)}
gathering = explicit
interpreter_python = /usr/bin/python3
host_key_checking = True
retry_files_enabled = False

[ssh_connection]
pipelining = True
ssh_args = ${sshArgs.join(' ')}
`,
  );
}

/** Block-style YAML of plain data; strings double-quoted (JSON's quoting is YAML's). */
export function toYaml(value: unknown, indent = 0): string {
  const pad = ' '.repeat(indent);
  const scalar = (v: unknown) => (typeof v === 'string' ? JSON.stringify(v) : String(v));
  const isBlock = (v: unknown) => typeof v === 'object' && v !== null && (Array.isArray(v) ? v.length > 0 : Object.keys(v).length > 0);
  if (Array.isArray(value)) {
    return value.map((item) => (isBlock(item) ? `${pad}- ${toYaml(item, indent + 2).slice(indent + 2)}` : `${pad}- ${scalar(item)}`)).join('\n');
  }
  return Object.entries(value as Record<string, unknown>)
    .map(([key, v]) =>
      isBlock(v)
        ? `${pad}${key}:\n${toYaml(v, indent + 2)}`
        : `${pad}${key}: ${Array.isArray(v) ? '[]' : typeof v === 'object' && v !== null ? '{}' : scalar(v)}`,
    )
    .join('\n');
}
