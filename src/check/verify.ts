import { lstatSync, readdirSync, readFileSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';
import type { MachineLayout } from '../build/layout.ts';
import type { RepoPaths } from '../load/repo.ts';
import { bashFile } from '../util/bash-file.ts';
import { runProcess } from '../util/process.ts';
import type { CheckResult, Problem } from './results.ts';
import { whereInTree } from './where.ts';

const inImageBash = bashFile(new URL('./in-image.bash', import.meta.url));
const unitSuffix = /\.(service|socket|timer|path|mount|automount|swap|target|slice)$/;
const unitDirectories = ['usr/local/lib/systemd/system', 'etc/systemd/system'];

/** Every file under `dir` (relative paths; links listed, not followed); none when it is missing. */
function filesUnder(dir: string, prefix = ''): string[] {
  let entries;
  try {
    entries = readdirSync(join(dir, prefix), { withFileTypes: true });
  } catch {
    return [];
  }
  return entries.flatMap((entry) => (entry.isDirectory() ? filesUnder(dir, join(prefix, entry.name)) : [join(prefix, entry.name)]));
}

/**
 * What to verify in a tree: unit files by path, units with drop-ins by name. A dash prefix's drop-ins
 * (homecloud-.service.d/) name no unit: they are verified with the units they apply to.
 */
export function unitsIn(tree: string): string[] {
  const units = new Set<string>();
  for (const dir of unitDirectories) {
    for (const file of filesUnder(join(tree, dir))) {
      const parts = file.split('/');
      if (parts.length === 1 && unitSuffix.test(file) && lstatSync(join(tree, dir, file)).isFile()) units.add(`/${dir}/${file}`);
      const unit = parts[0]!.slice(0, -2);
      if (parts.length === 2 && parts[0]!.endsWith('.d') && unitSuffix.test(unit) && !/-@?\.[a-z]+$/.test(unit)) units.add(unit);
    }
  }
  return [...units].sort();
}

/** An nginx configuration to test: the file (empty: nginx's own) and the directory a unit binds on /etc/nginx (empty: none). */
interface NginxConfiguration {
  conf: string;
  etc: string;
  /** The unit that runs it, or the tree's /etc/nginx. */
  from: string;
}

/**
 * The nginx configurations a tree holds, as their units run them: each service whose ExecStart= runs nginx
 * (its -c, and a directory it binds on /etc/nginx), and Debian's own when the tree has files in /etc/nginx.
 */
export function nginxConfigurations(tree: string, units: string[]): NginxConfiguration[] {
  const found: NginxConfiguration[] = [];
  for (const unit of units.filter((unit) => unit.startsWith('/') && unit.endsWith('.service'))) {
    const text = readFileSync(join(tree, unit), 'utf8');
    const exec = /^ExecStart=[-@:+!]*(\S*\/)?nginx(\s.*)?$/m.exec(text);
    if (!exec) continue;
    const conf = /\s-c\s+(\S+)/.exec(exec[2] ?? '')?.[1] ?? '';
    const bound = [...text.matchAll(/^Bind(?:ReadOnly)?Paths=(.*)$/gm)]
      .flatMap((m) => m[1]!.split(/\s+/))
      .find((bind) => /^-?[^:]+:\/etc\/nginx(:|$)/.test(bind));
    found.push({ conf, etc: bound ? bound.replace(/^-/, '').split(':')[0]! : '', from: unit });
  }
  if (filesUnder(join(tree, 'etc/nginx')).length > 0) found.push({ conf: '', etc: '', from: '/etc/nginx' });
  return found;
}

type Outcome = Omit<CheckResult, 'check' | 'machine' | 'milliseconds'>;

/** A line "/path/x.service:12: message" or "x.service: message", with its file mapped to the repository. */
function unitProblem(repo: RepoPaths, layout: MachineLayout, line: string): Problem {
  const located = /^(\/[^:]+):(\d+): (.*)$/.exec(line);
  if (located && layout.manifest.entries[located[1]!]) return { ...whereInTree(repo, layout, located[1]!), line: Number(located[2]), message: located[3]! };
  const named = /^([^\s:/]+): (.*)$/.exec(line);
  const path = named && unitDirectories.map((dir) => `/${dir}/${named[1]}`).find((candidate) => layout.manifest.entries[candidate]);
  if (named && path) return { ...whereInTree(repo, layout, path), message: named[2]! };
  return { message: line };
}

/**
 * `systemd-analyze verify` of a machine's units and `nginx -t` of its nginx configurations, in a throwaway
 * copy of the sandbox image with the built tree in place (so units find the programs and files they name):
 * systemd-nspawn with a volatile overlay, no network, not booted. A command that only a package the image
 * lacks would bring is not counted against the unit: it is said.
 */
export async function verifyInImage(
  repo: RepoPaths,
  machine: string,
  tree: string,
  layout: MachineLayout,
  image: string,
): Promise<{ units: Outcome; nginx: Outcome }> {
  const units = unitsIn(tree);
  const nginx = nginxConfigurations(tree, units);
  if (units.length === 0)
    return { units: { ok: true, summary: 'no units', problems: [] }, nginx: { ok: true, summary: 'no nginx configuration', problems: [] } };
  const name = `homecloud-check-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
  const mount = '/run/homecloud-check-tree';
  const args = [
    ...units.map((unit) => `unit:${unit}`),
    ...layout.manifest.packages.install.map((name) => `package:${name}`),
    ...nginx.map((n) => `nginx:${n.conf}:${n.etc}`),
  ];
  const result = await runProcess(
    'systemd-nspawn',
    [
      '--quiet',
      '--register=no',
      '--keep-unit',
      `--machine=${name}`,
      `--directory=${image}`,
      '--volatile=overlay',
      '--private-network',
      `--bind-ro=${tree}:${mount}`,
      '--pipe',
      '--',
      '/bin/bash',
      '-c',
      inImageBash(),
      'in-image',
      mount,
      ...args,
    ],
    { check: false, timeout: 120_000 },
  );
  // nspawn leaves its propagation directory behind where /run is not a tmpfs.
  try {
    rmdirSync(`/run/systemd/nspawn/propagate/${name}`);
  } catch {
    // Gone already, as on a host where /run is a tmpfs.
  }
  const parts = result.stdout.split(/^@@homecloud-check /m).slice(1);
  if (!parts.some((part) => part.startsWith('verify '))) {
    const reason = `the image could not be started for the check (systemd-nspawn, exit status ${result.status}): ${result.stderr.trim().split('\n').slice(-2).join(' ')}`;
    return { units: { ok: false, summary: reason, problems: [{ message: reason }] }, nginx: { ok: false, summary: reason, problems: [{ message: reason }] } };
  }
  const missing = parts.filter((part) => part.startsWith('package ')).map((part) => part.slice('package '.length).trim());
  const verify = parts.find((part) => part.startsWith('verify '))!;
  const [statusLine, ...lines] = verify.slice('verify '.length).split('\n').filter(Boolean);
  const unitProblems: Problem[] = [];
  const fromPackages: string[] = [];
  for (const line of lines) {
    const command = /: Command (\/\S+) is not executable: No such file or directory$/.exec(line)?.[1];
    if (command && missing.length > 0 && !layout.manifest.entries[command]) fromPackages.push(command);
    else unitProblems.push(unitProblem(repo, layout, line));
  }
  if (Number(statusLine) !== 0 && unitProblems.length === 0 && fromPackages.length === 0) {
    unitProblems.push({ message: `systemd-analyze verify failed (exit status ${statusLine}) without saying why` });
  }
  const unitCount = `${units.length} unit${units.length === 1 ? '' : 's'}`;
  const unverified = fromPackages.length ? `; not found, from packages the image lacks (${missing.join(', ')}): ${[...new Set(fromPackages)].join(', ')}` : '';
  const nginxProblems: Problem[] = [];
  const stoodIn = new Set<string>();
  for (const part of parts.filter((part) => part.startsWith('nginx '))) {
    const [header, ...lines] = part.slice('nginx '.length).split('\n');
    const status = Number(header!.split(' ')[0]);
    const spec = header!.slice(header!.indexOf(' ') + 1);
    const configuration = nginx.find((n) => `${n.conf}:${n.etc}` === spec);
    for (const line of lines) if (line.startsWith('stand-in ')) stoodIn.add(line.slice('stand-in '.length));
    const output = lines.filter((line) => !line.startsWith('stand-in '));
    if (status === 0) continue;
    const file = configuration?.conf || (configuration?.etc ? `${configuration.etc}/nginx.conf` : '/etc/nginx/nginx.conf');
    nginxProblems.push({
      ...whereInTree(repo, layout, file),
      message: `nginx -t (as ${configuration?.from ?? 'nginx'} runs it): ${output.filter(Boolean).join('; ')}`,
    });
  }
  return {
    units: {
      ok: unitProblems.length === 0,
      summary: unitProblems.length ? `${unitCount}, rejected by systemd-analyze verify` : unitCount + unverified,
      problems: unitProblems,
    },
    nginx: nginx.length
      ? {
          ok: nginxProblems.length === 0,
          summary: `${nginx.length} nginx configuration${nginx.length === 1 ? '' : 's'}${stoodIn.size ? `; stand-ins for what the machine makes at run time: ${[...stoodIn].join(', ')}` : ''}`,
          problems: nginxProblems,
        }
      : { ok: true, summary: 'no nginx configuration', problems: [] },
  };
}
