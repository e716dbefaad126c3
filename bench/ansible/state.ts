// One desired state for three machines, described once, so that the homecloud
// repository and the Ansible playbook written from it deploy the same bytes.
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';

export type Fact = string | number | string[];
export type Facts = Record<string, Fact>;

/**
 * A piece of a template, which each tool spells in its own language:
 * literal text; a fact (or a default when it is unset or empty); one line per
 * item of a list fact; a choice between two words on a fact's value.
 * `ENV_MACHINE` is the machine's name (Ansible's `inventory_hostname`).
 */
export type Piece =
  { text: string } | { fact: string; or?: string } | { each: string; before: string; after: string } | { when: string; is: string; then: string; else: string };

/**
 * Who a path belongs to: `_` is homecloud's base layer (the m4 prelude),
 * `machine` each machine's own tree (its layer list), `common` the shared
 * files, else the service whose configuration it is (a change restarts or
 * reloads that service).
 */
export type Group = '_' | 'machine' | 'common' | string;

export interface StaticFile {
  path: string;
  content: string;
  mode: number;
  group: Group;
}

export interface Template {
  path: string;
  mode: number;
  pieces: Piece[];
  group: Group;
}

export interface Link {
  path: string;
  target: string;
  group: Group;
}

export interface Service {
  name: string;
  /** Has ExecReload: a configuration change reloads it instead of restarting it. */
  reloads: boolean;
}

export interface DesiredState {
  machines: string[];
  facts: Record<string, Facts>;
  services: Service[];
  files: StaticFile[];
  templates: Template[];
  links: Link[];
  /** The file the one-change run edits: a static configuration file of a service that reloads. */
  changeTarget: string;
}

export const unitDir = '/usr/local/lib/systemd/system';
export const wantsDir = `${unitDir}/multi-user.target.wants`;

const prelude = resolve(import.meta.dirname, '../../layers/_/usr/local/include/m4/00-prelude.m4');

/** A deterministic stream of numbers, so that every generation writes the same bytes. */
function numbers(seed: number): () => number {
  let state = seed;
  return () => {
    state = (state * 1103515245 + 12345) % 2147483648;
    // The low bits of this generator repeat quickly: use the high ones.
    return state >>> 12;
  };
}

const words = [
  'alpha',
  'bravo',
  'cache',
  'delta',
  'entry',
  'fetch',
  'grant',
  'house',
  'index',
  'joint',
  'kilo',
  'limit',
  'mount',
  'node',
  'owner',
  'proxy',
  'quota',
  'route',
  'share',
  'token',
  'unit',
  'value',
  'watch',
  'zone',
];

/** Text lines of about `size` bytes. */
function prose(next: () => number, title: string, size: number): string {
  const lines = [title];
  let length = title.length + 1;
  while (length < size) {
    const line = Array.from({ length: 4 + (next() % 8) }, () => words[next() % words.length]).join(' ');
    lines.push(line);
    length += line.length + 1;
  }
  return lines.join('\n') + '\n';
}

function serviceScript(name: string): string {
  return `#!/bin/bash
# ${name}: reads its configuration at start (and again on SIGHUP), then idles.
set -euo pipefail
load() {
  cat /usr/local/opt/${name}/*.conf /usr/local/opt/${name}/conf.d/*.conf >/dev/null
  echo "${name}: configuration loaded, \${BENCH_WORKERS:-1} workers"
}
trap load HUP
load
while :; do
  sleep 3600 &
  wait $! || kill $! 2>/dev/null || true
done
`;
}

function unitFile(service: Service): string {
  return `[Unit]
Description=Benchmark service ${service.name}

[Service]
Type=simple
DynamicUser=yes
ExecStart=/usr/local/libexec/${service.name}/run
${service.reloads ? 'ExecReload=/bin/kill -HUP $MAINPID\n' : ''}EnvironmentFile=/usr/local/etc/default/${service.name}.env
BindReadOnlyPaths=/usr/local/opt/${service.name}
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
NoNewPrivileges=yes

[Install]
WantedBy=multi-user.target
`;
}

const text = (text: string): Piece => ({ text });
const fact = (name: string, or?: string): Piece => (or === undefined ? { fact: name } : { fact: name, or });

/** The templates of a service: its environment file and three drop-ins in conf.d. */
function serviceTemplates(name: string): Template[] {
  const conf = `/usr/local/opt/${name}/conf.d`;
  return [
    {
      path: `/usr/local/etc/default/${name}.env`,
      mode: 0o644,
      group: name,
      pieces: [
        text(`# ${name} on `),
        fact('ENV_MACHINE'),
        text('\nBENCH_WORKERS='),
        fact('ENV_WORKERS', '2'),
        text('\nBENCH_ROLE='),
        fact('ENV_ROLE'),
        text('\n'),
      ],
    },
    {
      path: `${conf}/10-node.conf`,
      mode: 0o644,
      group: name,
      pieces: [
        text('node = '),
        fact('ENV_MACHINE'),
        text('\nregion = '),
        fact('ENV_REGION', 'home'),
        text(`\nname = ${name}\nexposure = `),
        { when: 'ENV_ROLE', is: 'edge', then: 'public', else: 'private' },
        text('\n'),
      ],
    },
    {
      path: `${conf}/20-peers.conf`,
      mode: 0o644,
      group: name,
      pieces: [text(`# peers ${name} talks to\n`), { each: 'ENV_PEERS', before: 'peer ', after: ` port ${7000 + Number(name.replace(/\D/g, ''))}` }],
    },
    {
      path: `${conf}/30-disks.conf`,
      mode: 0o644,
      group: name,
      pieces: [text('workers = '), fact('ENV_WORKERS', '2'), text('\n'), { each: 'ENV_DISKS', before: 'disk /dev/', after: ' rw' }, text('# end\n')],
    },
  ];
}

/** Ten shared templates: node settings, greetings, peers, disks, and two rendered scripts. */
function commonTemplates(): Template[] {
  const etc = '/usr/local/etc/bench';
  const lib = '/usr/local/lib/bench';
  const t = (path: string, mode: number, pieces: Piece[]): Template => ({ path, mode, pieces, group: 'common' });
  return [
    t(`${etc}/node.conf`, 0o644, [
      text('# node settings for '),
      fact('ENV_MACHINE'),
      text('\nrole = '),
      fact('ENV_ROLE'),
      text('\nregion = '),
      fact('ENV_REGION', 'home'),
      text('\n'),
    ]),
    t(`${etc}/motd.txt`, 0o644, [fact('ENV_GREETING', 'Hello'), text(' from '), fact('ENV_MACHINE'), text('.\n')]),
    t(`${etc}/peers.conf`, 0o644, [text('# peers of '), fact('ENV_MACHINE'), text('\n'), { each: 'ENV_PEERS', before: 'peer ', after: '.home.arpa' }]),
    t(`${etc}/disks.conf`, 0o644, [{ each: 'ENV_DISKS', before: '/dev/', after: ' /srv/data auto defaults 0 2' }]),
    t(`${etc}/workers.conf`, 0o644, [text('workers '), fact('ENV_WORKERS', '2'), text('\nqueue '), fact('ENV_ROLE'), text('-queue\n')]),
    t(`${etc}/mail.conf`, 0o644, [text('relay = '), fact('ENV_MAIL_RELAY', 'localhost'), text('\nfrom = root@'), fact('ENV_MACHINE'), text('.home.arpa\n')]),
    t(`${etc}/backup.conf`, 0o600, [
      text('target = backup@'),
      { when: 'ENV_ROLE', is: 'edge', then: 'vault', else: 'alpha' },
      text('.home.arpa:/srv/backup/'),
      fact('ENV_MACHINE'),
      text('\n'),
      { each: 'ENV_DISKS', before: 'include /dev/', after: '' },
    ]),
    t(`${etc}/exposure.conf`, 0o644, [text('listen = '), { when: 'ENV_ROLE', is: 'edge', then: '0.0.0.0', else: '127.0.0.1' }, text('\n')]),
    t(`${lib}/node-info.sh`, 0o755, [
      text('#!/bin/bash\necho "'),
      fact('ENV_MACHINE'),
      text(' is a '),
      fact('ENV_ROLE'),
      text(' in '),
      fact('ENV_REGION', 'home'),
      text('"\n'),
    ]),
    t(`${lib}/peer-list.sh`, 0o755, [text('#!/bin/bash\ncat <<EOF\n'), { each: 'ENV_PEERS', before: '', after: '' }, text('EOF\n')]),
  ];
}

/**
 * About 300 files per machine: 30 templates using facts, 5 sandboxed services
 * whose configuration changes restart or reload them, a few symlinks and the
 * wants links that enable the services.
 */
export function desiredState(): DesiredState {
  const machines = ['alpha', 'beta', 'gamma'];
  const facts: Record<string, Facts> = {
    alpha: {
      ENV_ROLE: 'edge',
      ENV_REGION: 'attic',
      ENV_WORKERS: 4,
      ENV_DISKS: ['sda', 'sdb'],
      ENV_PEERS: ['beta', 'gamma'],
      ENV_GREETING: 'Good morning',
      ENV_MAIL_RELAY: 'smtp.example.net',
    },
    beta: { ENV_ROLE: 'worker', ENV_WORKERS: 2, ENV_DISKS: ['nvme0n1'], ENV_PEERS: ['alpha', 'gamma'], ENV_GREETING: 'Hello there' },
    gamma: { ENV_ROLE: 'worker', ENV_REGION: 'cellar', ENV_WORKERS: 8, ENV_DISKS: ['sda', 'sdb', 'sdc'], ENV_PEERS: ['alpha', 'beta'], ENV_MAIL_RELAY: '' },
  };
  const services: Service[] = [1, 2, 3, 4, 5].map((n) => ({ name: `bench${n}`, reloads: n >= 4 }));
  const next = numbers(20261125);
  const files: StaticFile[] = [];
  const add = (path: string, content: string, mode = 0o644, group: Group = 'common') => files.push({ path, content, mode, group });

  for (let g = 0; g < 10; g++) {
    for (let p = 0; p < 20; p++)
      add(`/usr/local/share/bench/doc/g${g}/page-${String(p).padStart(2, '0')}.txt`, prose(next, `page ${p} of group ${g}`, 200 + (next() % 6000)));
  }
  for (let n = 0; n < 20; n++)
    add(`/usr/local/lib/bench/tools/tool-${String(n).padStart(2, '0')}`, `#!/bin/bash\n# tool ${n}\nset -euo pipefail\necho "tool ${n}: $*"\n`, 0o755);
  for (let n = 0; n < 6; n++)
    add(`/usr/local/etc/bench/keys/key-${n}.pem`, `-----BEGIN BENCH KEY ${n}-----\n${prose(next, 'key', 400)}-----END BENCH KEY ${n}-----\n`, 0o600);
  for (let n = 0; n < 2; n++) add(`/usr/local/share/bench/data/table-${n}.csv`, prose(next, 'word,word,word', 64 * 1024).replace(/ /g, ','));
  add('/usr/local/include/m4/00-prelude.m4', readFileSync(prelude, 'utf8'), 0o644, '_');
  add('/usr/local/opt/initd/layers/10-layers.txt', ['common', ...services.map((s) => s.name)].map((name) => `+ ${name}\n`).join(''), 0o644, 'machine');

  const templates = commonTemplates();
  const links: Link[] = [
    { path: '/usr/local/bin/bench-tool', target: '../lib/bench/tools/tool-00', group: 'common' },
    { path: '/usr/local/share/bench/current', target: 'doc/g0', group: 'common' },
    { path: '/usr/local/etc/bench/active.conf', target: 'node.conf', group: 'common' },
  ];
  for (const service of services) {
    const { name } = service;
    add(`${unitDir}/${name}.service`, unitFile(service), 0o644, name);
    add(`/usr/local/libexec/${name}/run`, serviceScript(name), 0o755, name);
    add(`/usr/local/opt/${name}/service.conf`, `# ${name}\nlisten_port = ${7000 + Number(name.slice(5))}\nlog_level = info\n`, 0o644, name);
    add(`/usr/local/opt/${name}/limits.conf`, `max_connections = 256\nmax_body = 1m\n`, 0o644, name);
    add(`/usr/local/opt/${name}/conf.d/00-defaults.conf`, prose(next, `# defaults of ${name}`, 300), 0o644, name);
    add(`/usr/local/opt/${name}/README`, prose(next, `${name} configuration`, 900), 0o644, name);
    templates.push(...serviceTemplates(name));
    links.push({ path: `${wantsDir}/${name}.service`, target: `../${name}.service`, group: name });
  }
  return { machines, facts, services, files, templates, links, changeTarget: '/usr/local/opt/bench4/limits.conf' };
}

/** The content the one-change run writes in its nth run. */
export function changedContent(original: string, run: number): string {
  return `${original}# change ${run}\n`;
}

/** What a template renders to for a machine: the reference both tools' renderings must equal. */
export function renderTemplate(template: Template, machine: string, facts: Facts): string {
  const value = (name: string): Fact | undefined => (name === 'ENV_MACHINE' ? machine : facts[name]);
  const scalar = (name: string): string => {
    const v = value(name);
    if (v === undefined) throw new Error(`${template.path}: fact ${name} is not set for ${machine}`);
    return Array.isArray(v) ? v.join(',') : String(v);
  };
  return template.pieces
    .map((piece) => {
      if ('text' in piece) return piece.text;
      if ('fact' in piece) return piece.or !== undefined && (value(piece.fact) === undefined || value(piece.fact) === '') ? piece.or : scalar(piece.fact);
      if ('each' in piece) {
        const items = value(piece.each);
        if (!Array.isArray(items)) throw new Error(`${template.path}: fact ${piece.each} is not a list for ${machine}`);
        return items.map((item) => `${piece.before}${item}${piece.after}\n`).join('');
      }
      return scalar(piece.when) === piece.is ? piece.then : piece.else;
    })
    .join('');
}

/** m4 for homecloud: a template in the prelude's macros, with `[` `]` quotes. */
export function m4Template(template: Template): string {
  return template.pieces
    .map((piece) => {
      if ('text' in piece) return literal(piece.text, template);
      if ('fact' in piece) return piece.or === undefined ? `m5_assert([${piece.fact}])` : `m5_or([${piece.fact}], [${literal(piece.or, template)}])`;
      if ('each' in piece)
        return `m5_for([each_item], [${literal(piece.before, template)}[]each_item[]${literal(piece.after, template)}\n], m5_assert([${piece.each}]))m4_dnl\n`;
      return `m4_ifelse(m5_assert([${piece.when}]), [${literal(piece.is, template)}], [${literal(piece.then, template)}], [${literal(piece.else, template)}])`;
    })
    .join('');
}

/** Jinja2 for Ansible's template module (trim_blocks on, trailing newline kept). */
export function jinjaTemplate(template: Template): string {
  const variable = (name: string) => (name === 'ENV_MACHINE' ? 'inventory_hostname' : name);
  const string = (text: string) => `'${text.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
  return template.pieces
    .map((piece) => {
      if ('text' in piece) return literal(piece.text, template);
      if ('fact' in piece)
        return piece.or === undefined ? `{{ ${variable(piece.fact)} }}` : `{{ ${variable(piece.fact)} | default(${string(piece.or)}, true) }}`;
      if ('each' in piece)
        return `{% for each_item in ${variable(piece.each)} %}\n${literal(piece.before, template)}{{ each_item }}${literal(piece.after, template)}\n{% endfor %}\n`;
      return `{{ ${string(piece.then)} if ${variable(piece.when)} == ${string(piece.is)} else ${string(piece.else)} }}`;
    })
    .join('');
}

/** Text that means the same in both languages: no m4 quotes or macro names, no Jinja delimiters. */
function literal(text: string, template: Template): string {
  if (/[[\]]|\b(m4_|m5_|ENV_)|each_item|\{[{%#]/.test(text)) throw new Error(`${template.path}: "${text}" would be read as markup by m4 or Jinja`);
  return text;
}

/** Output path of a template's source in the homecloud repository: `x.conf` -> `x.m4.conf`. */
export function m4SourceName(path: string): string {
  const slash = path.lastIndexOf('/');
  const base = path.slice(slash + 1);
  const dot = base.indexOf('.', 1);
  // homecloud reads `.m4.` as "template": the output name needs an extension to put it before.
  if (dot < 0) throw new Error(`${path}: a template's output name needs an extension for the m4 source name`);
  return `${path.slice(0, slash + 1)}${base.slice(0, dot)}.m4${base.slice(dot)}`;
}
