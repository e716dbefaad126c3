import { readFileSync } from 'node:fs';
import { HomecloudError } from '../load/errors.ts';
import type { RepoPaths } from '../load/repo.ts';
import { probeFactNames, type Facts } from '../facts/facts.ts';
import { isInside, octal, realPath } from '../util/fs.ts';
import { sha256 } from '../util/hash.ts';
import { collectPackages, linksFile, packagesFile, parseLinks, parsePackages, parseTriggers, triggersFile, type DeclaredLink, type PackageDeclaration } from './declared.ts';
import { fileEntry, rootOwner, sortEntries, type Manifest, type ManifestEntries } from './manifest.ts';
import { holdsSecret, maskSecrets } from './literal-facts.ts';
import { renderTemplate } from './render.ts';
import { preludeFacts, renderEnvironment, renderKey, templateInputs } from './template-inputs.ts';
import { publicDefines as publicDefinesOf, readsPublic, type FleetPublic } from '../facts/public.ts';
import { directoryMode, pinnedDirectoryMode, preludePath, privateName } from './rules.ts';
import { readThroughLinkCheck, type SourceEntry, type SourceTree } from './walk.ts';

/**
 * A cached render: its key (content hash, then what else it read), output hash, whether it must render every
 * time, whether the output holds a secret; publicKey: the machines' public material a template that reads it
 * (m5_public) was rendered with, empty for the others; the files it included and the facts it read (template-inputs.ts).
 */
export type RenderRecord = [key: string, sha256: string, volatile: boolean, secret: boolean, publicKey: string, includes: string[], facts: string[]];
export type RenderCache = Record<string, RenderRecord>;

/** What the layout needs from its surroundings (the builder supplies these). */
export interface LayoutContext {
  repo: RepoPaths;
  machine: string;
  trees: SourceTree[];
  facts: Facts;
  probed: boolean;
  /** Renders known from earlier builds; only trusted when the tree is. */
  renders: RenderCache;
  /** Directories outside the repository that links may read from (homecloud.json readOutside). */
  readOutside: readonly string[];
  /** The machines' public material, for m5_public. */
  fleet: FleetPublic;
  /** The sha256 of a source file's content. */
  hash(entry: SourceEntry): string;
  /** Run a render through the shared concurrency limit. */
  schedule<T>(task: () => Promise<T>): Promise<T>;
}

/** Where one output path came from. */
export interface Provenance {
  entry: SourceEntry;
  /** Other sources that have the same path: overridden by the machine, or identical. */
  others: SourceEntry[];
  relation?: 'overrides' | 'identical';
}

export interface MachineLayout {
  manifest: Manifest;
  provenance: Map<string, Provenance>;
  declaredLinks: Map<string, DeclaredLink>;
  /** Rendered output by template source path, for templates rendered in this run. */
  rendered: Map<string, Buffer>;
  renders: RenderCache;
  notes: string[];
  /** True when some template must be rendered on every build (it includes a file whose name is made at render time). */
  volatile: boolean;
  /** What every template shares (the prelude, unconventional fact names): part of each render key. */
  environmentKey: string;
  /** Files the templates include, absolute: a change to one rebuilds the machine. */
  includes: string[];
  /** Paths more than one source provides: the winning source file, and whether it overrides the others or all are identical. */
  contested: [dest: string, winner: string, relation: 'overrides' | 'identical'][];
  /** The prelude's files and the facts it reads (its text is read on first call if no template was rendered). */
  prelude(): Prelude;
}

/** What m4 reads before every template of a machine: the prelude files, and the fact names their text uses. */
export interface Prelude {
  paths: string[];
  facts: string[];
}

/** The prelude files m4 reads before every template: the base layer's usr/local/include/m4/*.m4, sorted. */
export function preludesOf(trees: SourceTree[]): SourceEntry[] {
  return trees[0]!.entries.filter((entry) => preludePath.test(entry.dest) && entry.rule !== 'template').sort((a, b) => (a.dest < b.dest ? -1 : 1));
}

/** A machine's prelude, worked out from its sources (a full layout keeps it for the quick builds that follow). */
export function preludeOf(trees: SourceTree[], facts: Facts): Prelude {
  const preludes = preludesOf(trees);
  return { paths: preludes.map((entry) => entry.path), facts: [...preludeFacts(preludeText(preludes), facts)] };
}

/** The text of the prelude files, read once per machine when a template needs its words. */
export function preludeText(preludes: SourceEntry[]): string {
  return preludes.map((entry) => readFileSync(entry.contentPath, 'latin1')).join('\n');
}

/**
 * A machine's layout: which source makes each path of its tree (collisions refused), every template rendered or
 * taken from the render cache, declared links added, packages collected. What a deploy will do is a plan
 * (src/plan/); this is what the tree is.
 */
export async function layoutMachine(context: LayoutContext): Promise<MachineLayout> {
  const { repo, machine, trees } = context;
  const display = (entry: SourceEntry) => repo.display(entry.path);
  const candidates = new Map<string, SourceEntry[]>();
  const directories = new Map<string, { pinned: boolean; from: string }>();
  const checkLink = readThroughLinkCheck(repo, context.readOutside);
  for (const tree of trees) {
    for (const entry of tree.entries) {
      // Before anything reads through a link (hashes, renders, identity checks).
      checkLink(entry);
      const list = candidates.get(entry.dest);
      if (list) list.push(entry);
      else candidates.set(entry.dest, [entry]);
    }
    for (const [dir, info] of tree.directories) {
      const known = directories.get(dir);
      if (known) known.pinned ||= info.pinned;
      else directories.set(dir, { pinned: info.pinned, from: repo.display(tree.source.dir + dir) });
    }
  }

  for (const [dest, list] of candidates) {
    const dir = directories.get(dest);
    if (dir) {
      throw new HomecloudError(`a file here is a directory in ${dir.from}`, { file: display(list[0]!) }, 'a path must be a file in every source or a directory in every source: rename one of them');
    }
  }

  const preludes = preludesOf(trees);
  const preludeKey = preludes.map((entry) => `${entry.dest}=${context.hash(entry)}`).join(',');
  const factsDir = realPath(repo.facts);
  const environmentKey = renderEnvironment(preludeKey, context.facts);
  let preludeNames: Set<string> | undefined;
  const preludeNamesRead = () => (preludeNames ??= preludeFacts(preludeText(preludes), context.facts));
  const publicDefines = publicDefinesOf(context.fleet);
  const renders: RenderCache = {};
  const rendered = new Map<string, Buffer>();
  const includes = new Set<string>();
  let volatile = false;

  // m4 names files as given: relative to the repository (its working directory) when inside it.
  const relative = (path: string) => repo.display(path);

  /** Render a template (or take its cached hash) and return the output's sha256. */
  const templateHash = async (entry: SourceEntry, needBytes: boolean): Promise<string> => {
    const contentHash = context.hash(entry);
    const cached = context.renders[entry.path];
    // Make's rule: rendered again when the template, a file it includes, the prelude or a fact it reads changed;
    // one that reads public material, when that changed.
    if (
      cached?.length === 7 &&
      !cached[2] &&
      !needBytes &&
      (!cached[4] || cached[4] === (context.fleet.signature || '-')) &&
      cached[0] === renderKey(contentHash, entry.path, environmentKey, { includes: cached[5], facts: cached[6] }, context.facts)
    ) {
      renders[entry.path] = cached;
      for (const include of cached[5]) includes.add(include);
      return cached[1];
    }
    const text = readFileSync(entry.contentPath, 'latin1');
    const inputs = templateInputs(text, preludeNamesRead(), context.facts, repo.root);
    const isVolatile = inputs.computed;
    volatile ||= isVolatile;
    for (const include of inputs.includes) includes.add(include);
    let output: Buffer;
    try {
      output = await context.schedule(() =>
        renderTemplate({ cwd: repo.root, preludes: preludes.map((p) => relative(p.path)), template: relative(entry.path), facts: context.facts, publicDefines }),
      );
    } catch (error) {
      throw maskSecrets(explainMissingProbeFact(error, machine, context.probed), context.facts);
    }
    const digest = sha256(output);
    const key = renderKey(contentHash, entry.path, environmentKey, inputs, context.facts);
    renders[entry.path] = [key, digest, isVolatile, holdsSecret(output, context.facts), readsPublic.test(text) ? context.fleet.signature || '-' : '', inputs.includes, inputs.facts];
    rendered.set(entry.path, output);
    return digest;
  };

  // Which source wins each path (sync); collisions between layers that involve templates wait for the renders.
  const provenance = new Map<string, Provenance>();
  const notes: string[] = [];
  const undecided: [string, SourceEntry[]][] = [];
  for (const [dest, list] of candidates) {
    if (list.length === 1) {
      provenance.set(dest, { entry: list[0]!, others: [] });
      continue;
    }
    const own = list.filter((entry) => entry.source.kind === 'machine');
    const layered = list.filter((entry) => entry.source.kind === 'layer');
    if (own.length > 1) {
      throw new HomecloudError(`${display(own[1]!)} makes the same path ${dest}`, { file: display(own[0]!) }, 'rename or remove one of the two files');
    }
    if (own.length === 1) {
      provenance.set(dest, { entry: own[0]!, others: layered, relation: 'overrides' });
      for (const other of layered) notes.push(`${display(own[0]!)} overrides ${display(other)}`);
    } else {
      undecided.push([dest, layered]);
    }
  }

  // Render every template whose output is needed, concurrently.
  const templates = new Set<SourceEntry>();
  for (const { entry } of provenance.values()) if (entry.rule === 'template') templates.add(entry);
  for (const [, layered] of undecided) for (const entry of layered) if (entry.rule === 'template') templates.add(entry);
  const outputHashes = new Map<SourceEntry, string>();
  await Promise.all([...templates].map(async (entry) => outputHashes.set(entry, await templateHash(entry, false))));

  const identity = (entry: SourceEntry): string => {
    if (entry.rule === 'link') return `link:${entry.linkTarget}`;
    return `file:${entry.rule === 'template' ? outputHashes.get(entry)! : context.hash(entry)}`;
  };
  for (const [dest, layered] of undecided.sort((a, b) => (a[0] < b[0] ? -1 : 1))) {
    const first = identity(layered[0]!);
    const differing = layered.findIndex((entry) => identity(entry) !== first);
    if (differing >= 0) {
      throw new HomecloudError(
        `${dest} comes from two layers with different content: ${display(layered[0]!)} and ${display(layered[differing]!)}`,
        { file: display(layered[differing]!) },
        'make the two files identical, keep the path in one layer only, or override it in the machine\'s own directory',
      );
    }
    provenance.set(dest, { entry: layered[0]!, others: layered.slice(1), relation: 'identical' });
  }

  const entries: ManifestEntries = {};
  for (const [dir, info] of directories) entries[dir] = { type: 'dir', mode: octal(info.pinned ? pinnedDirectoryMode : directoryMode) };
  const privateDirs = new Set([...provenance.keys()].filter((dest) => dest.endsWith(`/${privateName}`)).map((dest) => dest.slice(0, dest.lastIndexOf('/'))));
  for (const [dest, { entry }] of provenance) {
    if (entry.rule === 'link') {
      entries[dest] = { type: 'link', target: entry.linkTarget! };
      continue;
    }
    const sha256 = entry.rule === 'template' ? outputHashes.get(entry)! : context.hash(entry);
    const secret = entry.rule === 'template' ? renders[entry.path]![3] : entry.rule === 'deref' && isInside(realPath(entry.contentPath), factsDir);
    entries[dest] = fileEntry(entry.mode, sha256, secret, privateDirs.has(dest.slice(0, dest.lastIndexOf('/'))));
  }

  /** A winning output's text, for the declaration files under usr/local/opt/initd. */
  const textOf = async (dest: string): Promise<string> => {
    const { entry } = provenance.get(dest)!;
    if (entry.rule !== 'template') return readFileSync(entry.contentPath, 'utf8');
    if (!rendered.has(entry.path)) await templateHash(entry, true);
    return rendered.get(entry.path)!.toString('utf8');
  };

  const declaredLinks = new Map<string, DeclaredLink>();
  const packageLines: PackageDeclaration[] = [];
  const declarations = [...provenance.keys()].filter((dest) => dest.startsWith('/usr/local/opt/initd/')).sort();
  for (const dest of declarations) {
    const isLinks = linksFile.test(dest);
    const isPackages = packagesFile.test(dest);
    const isTriggers = triggersFile.test(dest);
    if (!isLinks && !isPackages && !isTriggers) continue;
    const { entry } = provenance.get(dest)!;
    if (entry.rule === 'link') continue;
    const text = await textOf(dest);
    const file = display(entry);
    if (isPackages) packageLines.push(...parsePackages(text, file));
    if (isTriggers) parseTriggers(text, file);
    if (isLinks) for (const link of parseLinks(text, file)) addDeclaredLink(link, entries, declaredLinks, provenance, display);
  }

  return {
    manifest: { format: 1, machine, owner: rootOwner, entries: sortEntries(entries), packages: collectPackages(packageLines) },
    provenance,
    declaredLinks,
    rendered,
    renders,
    notes: notes.sort(),
    volatile: volatile || Object.values(renders).some((record) => record[2]),
    environmentKey,
    includes: [...includes].sort(),
    contested: [...provenance].filter(([, p]) => p.relation).map(([dest, p]) => [dest, p.entry.path, p.relation!]),
    prelude: () => ({ paths: preludes.map((entry) => entry.path), facts: [...preludeNamesRead()] }),
  };
}

function addDeclaredLink(
  link: DeclaredLink,
  entries: ManifestEntries,
  declared: Map<string, DeclaredLink>,
  provenance: Map<string, Provenance>,
  display: (entry: SourceEntry) => string,
): void {
  const where = { file: link.file, line: link.line };
  const earlier = declared.get(link.path);
  if (earlier) {
    if (earlier.target === link.target) return;
    throw new HomecloudError(`${link.path} is declared with target ${link.target} here and ${earlier.target} at ${earlier.file}:${earlier.line}`, where, 'keep one of the two lines');
  }
  const existing = entries[link.path];
  if (existing) {
    const from = provenance.get(link.path);
    const other = from ? display(from.entry) : 'a directory of a layer';
    throw new HomecloudError(`the link ${link.path} would replace ${existing.type === 'dir' ? 'a directory' : 'a file'} from ${other}`, where, 'remove the line or the file');
  }
  // Every ancestor must be a directory (created when missing).
  const parts = link.path.split('/');
  for (let i = 2; i < parts.length; i++) {
    const ancestor = parts.slice(0, i).join('/');
    const there = entries[ancestor];
    if (!there) entries[ancestor] = { type: 'dir', mode: octal(directoryMode) };
    else if (there.type !== 'dir') {
      const from = provenance.get(ancestor);
      throw new HomecloudError(`the link ${link.path} needs ${ancestor} to be a directory, but it is a file from ${from ? display(from.entry) : 'a declared link'}`, where, 'move the link or the file');
    }
  }
  entries[link.path] = { type: 'link', target: link.target };
  declared.set(link.path, link);
}

function explainMissingProbeFact(error: unknown, machine: string, probed: boolean): unknown {
  if (!(error instanceof HomecloudError)) return error;
  const missing = /required fact (\w+) is not set/.exec(error.message)?.[1];
  if (missing && probeFactNames.includes(missing) && !probed) {
    return new HomecloudError(
      `required fact ${missing} is not set: it is read from the live machine, and no probe of ${machine} is cached`,
      error.where,
      `run: homecloud facts ${machine}`,
    );
  }
  return error;
}
