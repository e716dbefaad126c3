import { realpathSync } from 'node:fs';
import { Builder } from '../../build/builder.ts';
import { ruleDescriptions } from '../../build/rules.ts';
import type { Fact } from '../../facts/facts.ts';
import { HomecloudError } from '../../load/errors.ts';
import type { Source } from '../../load/layers.ts';
import { colors, exitStatus, table } from '../../report/output.ts';
import { repoFrom } from '../context.ts';
import type { GlobalOptions } from '../main.ts';

export async function run([machine, rawPath]: string[], options: GlobalOptions): Promise<number> {
  const repo = repoFrom(options);
  const path = '/' + rawPath!.replace(/^\/+/, '').replace(/\/+$/, '');
  const { plan, facts } = await new Builder(repo).plan(machine!);
  const entry = plan.manifest.entries[path];
  if (!entry) {
    const base = path.slice(path.lastIndexOf('/') + 1);
    const similar = Object.keys(plan.manifest.entries).filter((p) => p.endsWith(`/${base}`)).slice(0, 5);
    throw new HomecloudError(`${machine} has no path ${path}`, undefined, similar.length ? `paths with that name: ${similar.join(', ')}` : `homecloud ls shows ${machine}'s layers; its built tree is var/build/${machine}/tree`);
  }
  const origin = plan.provenance.get(path);
  const declared = plan.declaredLinks.get(path);
  const describeSource = (source: Source) => (source.kind === 'machine' ? "the machine's own directory" : `layer ${source.name}${source.origin === 'standard' ? ', standard' : ''}`);

  const result: Record<string, unknown> = { machine, path, ...entry };
  const lines: string[] = [];
  const kind = entry.type === 'file' ? `file, mode ${entry.mode}` : entry.type === 'dir' ? `directory, mode ${entry.mode}` : `link to ${entry.target}`;
  lines.push(`${colors.bold(path)} on ${machine}: ${kind}`);
  const rows: string[][] = [];
  if (origin) {
    const source = repo.display(origin.entry.path);
    rows.push(['source', `${source} (${describeSource(origin.entry.source)})`]);
    rows.push(['rule', ruleDescriptions[origin.entry.rule]]);
    if (origin.entry.rule === 'deref') rows.push(['content of', repo.display(realTarget(origin.entry.contentPath))]);
    for (const other of origin.others) rows.push([origin.relation === 'overrides' ? 'overrides' : 'identical in', `${repo.display(other.path)} (${describeSource(other.source)})`]);
    Object.assign(result, { source, rule: origin.entry.rule, layer: origin.entry.source.name, others: origin.others.map((o) => ({ source: repo.display(o.path), relation: origin.relation })) });
  } else if (declared) {
    rows.push(['declared', `${declared.file}:${declared.line}`]);
    Object.assign(result, { declared: `${declared.file}:${declared.line}` });
  } else if (entry.type === 'dir') {
    rows.push(['from', 'directories of the sources (and parents of declared links)']);
  }
  lines.push(table(rows.map(([a, b]) => [`  ${a}`, b!])));

  if (origin?.entry.rule === 'template') {
    // What the build recorded that the render read: the facts it names (also through the prelude, included files and other facts), and the files it includes.
    const record = plan.renders[origin.entry.path];
    const read = (record?.[6] ?? []).map((key) => ({ key, fact: facts.get(key) }));
    const factRows = read.map(({ key, fact }) => [`    ${key}`, fact ? shownValue(fact) : colors.dim('(not set)'), fact ? factOrigin(fact) : '']);
    lines.push('  facts read:' + (factRows.length ? '' : ' none'));
    if (factRows.length) lines.push(table(factRows));
    result.facts = read.map(({ key, fact }) => ({ key, value: fact ? (fact.secret ? null : fact.value) : null, set: fact !== undefined, secret: fact?.secret ?? false, from: fact ? factOrigin(fact) : null }));
    const includes = (record?.[5] ?? []).map((include) => repo.display(include));
    if (includes.length) lines.push(`  files included: ${includes.join(', ')}`);
    result.includes = includes;
  }

  process.stdout.write(options.json ? JSON.stringify(result) + '\n' : lines.join('\n') + '\n');
  return exitStatus.ok;
}

function shownValue(fact: Fact): string {
  if (fact.secret) return colors.yellow('(secret)');
  return fact.value.length > 60 ? `${fact.value.slice(0, 57)}...` : fact.value;
}

function factOrigin(fact: Fact): string {
  switch (fact.origin) {
    case 'machine':
      return 'the machine name';
    case 'probe':
      return `probe of the live machine (${fact.file})`;
    default:
      return fact.line ? `${fact.file}:${fact.line}` : (fact.file ?? '');
  }
}

function realTarget(path: string): string {
  try {
    return realpathSync(path);
  } catch {
    return path;
  }
}
