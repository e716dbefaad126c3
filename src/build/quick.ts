import { readFileSync } from 'node:fs';
import type { Fact, Facts } from '../facts/facts.ts';
import type { RepoPaths } from '../load/repo.ts';
import { isInside, realPath } from '../util/fs.ts';
import { sha256 } from '../util/hash.ts';
import type { DefaultsFile } from '../facts/machine-facts.ts';
import { fileEntry, fileMode, type ManifestEntries, type ManifestEntry } from './manifest.ts';
import { preludeOf, type Prelude, type RenderCache, type RenderRecord } from './layout.ts';
import { holdsSecret } from './literal-facts.ts';
import { renderTemplate } from './render.ts';
import { publicDefines, readsPublic, type FleetPublic } from '../facts/public.ts';
import { renderKey, sameContent, templateInputs } from './template-inputs.ts';
import type { FileContent } from './tree.ts';
import { readThroughLinkCheck, treeFiles, type SourceEntry, type SourceTree } from './walk.ts';
import { privateName } from './rules.ts';

/** What a full layout of a machine leaves for the quick path of the next build. */
export interface LayoutMemory {
  /** The machine's inputs other than its sources (inventory entry, fact files): any change means a full layout. */
  inputs: string;
  /** Per source directory, in order: its fingerprint and how many files and directories it had at the full layout. */
  sources: [dir: string, fingerprint: string, files: number, directories: number][];
  /** Paths that more than one source provides, with the winning source file. */
  contested: [dest: string, winner: string, relation: 'overrides' | 'identical'][];
  /** What every template of the machine shares (the prelude, unconventional fact names), part of each render key. */
  environmentKey: string;
  /** The layer defaults files the facts were read from. */
  defaults: DefaultsFile[];
  /** Whether some template renders on every build (it includes a file named at render time; the quick path is then not taken). */
  volatile: boolean;
  /** How many paths the machine's manifest has (a quick build without generators keeps them). */
  paths?: number;
  /** The machine's facts, in order, when none is a secret (secrets are written nowhere else). */
  facts?: Fact[];
  /** The prelude (a change to it is far-reaching, as are the facts its words name). */
  prelude?: Prelude;
}

/**
 * The facts a full layout used, to be remembered. A quick build runs only while
 * everything they come from is as it was then (the fact files and inventory
 * entry are in `inputs`, a changed layer default is far-reaching): it takes
 * them from here instead of reading every layer's defaults again.
 */
export function rememberedFacts(facts: Facts): Fact[] | undefined {
  const all = [...facts.values()];
  return all.some((fact) => fact.secret) ? undefined : all;
}

/** The remembered facts of the machine's last full layout, if any. */
export function factsOf(memory: LayoutMemory): Facts | undefined {
  return memory.facts && new Map(memory.facts.map((fact) => [fact.key, fact]));
}

export interface QuickContext {
  repo: RepoPaths;
  trees: SourceTree[];
  inputs: string;
  memory: LayoutMemory;
  /** Directories outside the repository that links may read from (homecloud.json readOutside). */
  readOutside: readonly string[];
  /** Each source's fingerprint when the tree was last built (quickly or not). */
  built: Map<string, string>;
  /** A source's files at an earlier fingerprint, if remembered (treeFiles). */
  treeAt(dir: string, fingerprint: string): readonly string[] | undefined;
  /** Remember a source's files at its current fingerprint. */
  recordTree(dir: string, fingerprint: string, files: () => string[]): void;
  /** An entry of the manifest of the last build. */
  previous(dest: string): ManifestEntry | undefined;
  /** A template's record in the render cache, read only when a template is looked at. */
  render(path: string): RenderRecord | undefined;
  hash(entry: SourceEntry): string;
  /** The machine's facts, loaded only if a template must render. */
  facts(): Facts;
  /** The machines' public material, for m5_public. */
  fleet: FleetPublic;
  schedule<T>(task: () => Promise<T>): Promise<T>;
}

export interface QuickLayout {
  /** The entries of the paths worked out again: the last build's manifest with these is the machine's. */
  entries: ManifestEntries;
  /** The paths worked out again (only these can differ from the previous manifest). */
  changed: string[];
  /** The render cache's records of the templates rendered (the last build's cache with these is the machine's). */
  renders?: RenderCache;
  contentOf(dest: string): FileContent;
}

/** Paths whose change touches more than themselves: facts, every template, declarations. */
const farReaching = /^\/usr\/local\/(?:doc\/examples\/[^/]+\.env|include\/m4\/[^/]+\.m4|opt\/initd\/.*)$/;

/**
 * When all that changed since the last build is the content or mode of files
 * that alone make their path, only those paths are worked out again; anything
 * else (a file added, removed or renamed, a collision, facts, declarations,
 * the prelude) returns undefined and the machine gets a full layout.
 */
export async function quickLayout(context: QuickContext): Promise<QuickLayout | undefined> {
  const { memory, previous, trees } = context;
  if (memory.inputs !== context.inputs || memory.sources.length !== trees.length) return undefined;
  // Templates that read more than their inputs render on every build: the full layout does that.
  if (memory.volatile) return undefined;
  const contested = new Map(memory.contested.map(([dest, winner, relation]) => [dest, { winner, relation }]));
  // The files that differ from when the machine was last built.
  const candidates: SourceEntry[] = [];
  const checkLink = readThroughLinkCheck(context.repo, context.readOutside);
  for (let i = 0; i < trees.length; i++) {
    const tree = trees[i]!;
    const [dir, , files, directories] = memory.sources[i]!;
    if (dir !== tree.source.dir) return undefined;
    const builtAt = context.built.get(dir);
    if (builtAt === tree.fingerprint) continue;
    if (tree.entries.length !== files || tree.directories.size !== directories) return undefined;
    // The files as they were when the machine was last built: one still the same made what the manifest has.
    const then = builtAt === undefined ? undefined : context.treeAt(dir, builtAt);
    const now = treeFiles(tree);
    context.recordTree(dir, tree.fingerprint, () => now);
    for (let j = 0; j < tree.entries.length; j++) {
      const entry = tree.entries[j]!;
      // A link repointed outside the repository may leave its content unchanged: check before comparing.
      checkLink(entry);
      if (then?.[j] !== now[j]) candidates.push(entry);
    }
  }

  let facts: Facts | undefined;
  let prelude: Prelude | undefined;
  let preludeNames: Set<string> | undefined;
  const prepared = new Map<string, PreparedRender>();
  const prepare = (entry: SourceEntry): PreparedRender => {
    let found = prepared.get(entry.path);
    if (!found) {
      facts ??= context.facts();
      prelude ??= memory.prelude ?? preludeOf(context.trees, facts);
      preludeNames ??= new Set(prelude.facts);
      const text = readFileSync(entry.contentPath, 'latin1');
      found = { text, inputs: templateInputs(text, preludeNames, facts, context.repo.root) };
      prepared.set(entry.path, found);
    }
    return found;
  };
  // Each changed template starts rendering before the manifest is looked into: its m4 runs while the records of
  // this machine and of the others are compared. One that turns out not to be needed (a touch that changed
  // nothing, an overridden file) is left unread; if the machine then needs a full layout, that renders it again.
  let started = false;
  for (const entry of candidates) {
    if (entry.rule !== 'template' || farReaching.test(entry.dest)) continue;
    const early = prepare(entry);
    // One that includes files, now or before, is laid out in full (below): rendered once, there.
    if (early.inputs.includes.length || early.inputs.computed || context.render(entry.path)?.[5]?.length) continue;
    early.output = render(entry, prelude!.paths, facts!, context);
    early.output.catch(() => {});
    started = true;
  }
  if (started) await undefined;

  const changed: SourceEntry[] = [];
  for (const entry of candidates) {
    const before = previous(entry.dest);
    if (!before || before.type === 'dir' || (before.type === 'link') !== (entry.rule === 'link')) return undefined;
    if (unchanged(entry, before, context)) continue;
    const contest = contested.get(entry.dest);
    // A file the machine overrides does not matter; identical files in several layers must stay identical.
    if (contest?.relation === 'overrides' && contest.winner !== entry.path) continue;
    if (contest?.relation === 'identical' || farReaching.test(entry.dest)) return undefined;
    changed.push(entry);
  }

  const entries: ManifestEntries = {};
  let renders: RenderCache | undefined;
  const rendered = new Map<string, Buffer>();
  const sources = new Map<string, SourceEntry>();
  const factsDir = realPath(context.repo.facts);
  for (const entry of changed) {
    // A file beside a .private: the full layout works out its mode.
    if (previous(`${entry.dest.slice(0, entry.dest.lastIndexOf('/'))}/${privateName}`)) return undefined;
    sources.set(entry.dest, entry);
    if (entry.rule === 'link') {
      entries[entry.dest] = { type: 'link', target: entry.linkTarget! };
      continue;
    }
    if (entry.rule !== 'template') {
      const secret = entry.rule === 'deref' && isInside(realPath(entry.contentPath), factsDir);
      entries[entry.dest] = fileEntry(entry.mode, context.hash(entry), secret);
      continue;
    }
    const { text, inputs, output: started } = prepare(entry);
    // A template that includes files, now or before: the full layout records the machine's included files.
    if (inputs.includes.length || inputs.computed || context.render(entry.path)?.[5]?.length) return undefined;
    let output: Buffer;
    try {
      output = await (started ?? render(entry, prelude!.paths, facts!, context));
    } catch {
      return undefined; // The full layout renders it again and reports the error properly.
    }
    const digest = sha256(output);
    const secret = holdsSecret(output, facts!);
    renders ??= {};
    const key = renderKey(context.hash(entry), entry.path, context.memory.environmentKey, inputs, facts!);
    renders[entry.path] = [key, digest, false, secret, readsPublic.test(text) ? context.fleet.signature || '-' : '', inputs.includes, inputs.facts];
    rendered.set(entry.dest, output);
    entries[entry.dest] = fileEntry(entry.mode, digest, secret);
  }
  return {
    entries,
    changed: changed.map((entry) => entry.dest),
    renders,
    contentOf: (dest) => {
      const bytes = rendered.get(dest);
      return bytes ? { data: bytes } : { copyFrom: sources.get(dest)!.contentPath };
    },
  };
}

/** Whether a source entry still makes what the previous manifest has at its path. */
function unchanged(entry: SourceEntry, before: ManifestEntry, context: QuickContext): boolean {
  if (entry.rule === 'link') return before.type === 'link' && before.target === entry.linkTarget;
  if (before.type !== 'file' || before.mode !== fileMode(entry.mode, before.secret === true)) return false;
  if (entry.rule !== 'template') return before.sha256 === context.hash(entry);
  // The quick path runs only while the machine's facts, prelude and included files are as at the full layout: the content decides.
  const record = context.render(entry.path);
  return record?.length === 7 && !record[2] && sameContent(record[0], context.hash(entry)) && record[1] === before.sha256 && (!record[4] || record[4] === (context.fleet.signature || '-'));
}

/** A changed template's text and what it reads, and its render once started. */
interface PreparedRender {
  text: string;
  inputs: ReturnType<typeof templateInputs>;
  output?: Promise<Buffer>;
}

async function render(entry: SourceEntry, preludes: string[], facts: Facts, context: QuickContext): Promise<Buffer> {
  const relative = (path: string) => context.repo.display(path);
  return context.schedule(() =>
    renderTemplate({ cwd: context.repo.root, preludes: preludes.map(relative), template: relative(entry.path), facts, publicDefines: publicDefines(context.fleet) }),
  );
}
