import { copyFileSync, constants, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, symlinkSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { HomecloudError } from '../load/errors.ts';
import { hostedLineProblem, readBuildRecord, type HostedDeclaration } from '../load/hosted.ts';
import { fileSha256, sha256 } from '../util/hash.ts';
import { runProcess, type ProcessResult } from '../util/process.ts';
import { ancestorsOf, octal } from '../util/fs.ts';
import { directoryMode } from './rules.ts';
import { fileEntry, type ManifestEntries, type ManifestEntry } from './manifest.ts';
import { globMatches } from '../util/glob.ts';
import type { FileContent } from './tree.ts';
import { writeFleet, type Fleet, type FleetMember, type Offer } from './fleet.ts';

/**
 * Build-time generators (FORMAT.md section 7): an executable `/usr/local/opt/initd/generators/<name>` of a
 * machine's tree runs on the operator's side with the tree's files it declares as inputs, and what it writes
 * joins the tree. So declarations (a file per function, container, peer) become units and links the engine
 * sees: in the manifest, in `explain`, and started, restarted and stopped by the ordinary reconcile.
 */
/** Where generators are: a file right in it is one. */
export const generatorsDir = '/usr/local/opt/initd/generators/';
export const generatorPath = /^\/usr\/local\/opt\/initd\/generators\/[^/]+$/;

/** What one generator made from one set of inputs. */
export interface GeneratorRecord {
  /** The generator's content, the machine and its inputs: the same key gives the same output. */
  key: string;
  /** Its outputs, directories it made included. */
  entries: ManifestEntries;
  /** Output path -> the input (a declaration) it was made from. */
  from: Record<string, string>;
  /** Values its declarations take that must be unique in the repository (`claim` lines). */
  claims?: Claim[];
  /** Machines its declarations make that this machine hosts (`machine` lines). */
  machines?: HostedDeclaration[];
  /** Values its declarations offer to the other machines' fleet generators (`offer` lines). */
  offers?: Offer[];
  /** The layers whose machines it reads (`# fleet:`): its key holds what they said. */
  fleet?: string[];
}

/** A declaration's claim on a value of a kind (an address, a subnet) that no other declaration of the repository may take. */
export interface Claim {
  kind: string;
  value: string;
  declaration: string;
  /** The repository file that makes the declaration, for messages. */
  file?: string;
}

/** The generators of a machine's last build, by the generator's path. */
export type Generated = Record<string, GeneratorRecord>;

export interface GenerateContext {
  machine: string;
  /** The built tree: holds `base`, and the outputs `previous` records. */
  tree: string;
  /** The machine's tree without generated outputs. */
  base: ManifestEntries;
  /** What the last build generated, when its tree is trusted. */
  previous: Generated | undefined;
  /** Where a work directory may be made (removed by the caller). */
  scratch: string;
  /** The source file in the repository that makes a path, for messages. */
  sourceOf(path: string): string | undefined;
  /** Run a generator through the shared concurrency limit. */
  schedule<T>(task: () => Promise<T>): Promise<T>;
  /** The repository's machines as fleet generators see them. */
  fleet?: Fleet;
}

export interface GenerateResult {
  generated: Generated;
  /** The content of an output of a generator that ran in this build. */
  contentOf(path: string): FileContent;
  /** Output paths that may differ from the last build's: every output, old and new, of a generator that ran. */
  changed: string[];
}

/** Run the tree's generators whose inputs changed; the others' outputs are taken from the last build. */
export async function generate(context: GenerateContext): Promise<GenerateResult> {
  const generators = Object.keys(context.base).filter((path) => generatorPath.test(path) && context.base[path]!.type === 'file');
  const generated: Generated = {};
  const outDirs = new Map<string, string>();
  const changed = new Set<string>();
  // Every generator ends before a failure is told: the caller then removes the scratch directory they all write in.
  const runs = await Promise.allSettled(
    generators.map(async (generator) => {
      const text = readFileSync(context.tree + generator, 'utf8');
      const globs = declaredInputs(text);
      if (!globs.length) {
        throw new HomecloudError(`the generator ${generator} declares no inputs`, where(context, generator), 'add a comment line "# inputs: <glob> ..." naming the files of the tree it reads, e.g. # inputs: /usr/local/opt/app/*.conf');
      }
      const inputs = Object.keys(context.base)
        .filter((path) => context.base[path]!.type !== 'dir' && !generatorPath.test(path) && globs.some((glob) => globMatches(glob, path)))
        .sort();
      const fleetLayers = declaredFleet(text);
      const members = fleetLayers.length ? (context.fleet?.members(fleetLayers) ?? []) : undefined;
      const key = sha256(JSON.stringify([context.machine, identity(context.base[generator]!), inputs.map((path) => [path, identity(context.base[path]!)]), ...(members ? [members] : [])]));
      const known = context.previous?.[generator];
      if (known?.key === key) {
        generated[generator] = known;
        return;
      }
      const out = await context.schedule(() => runGenerator(context, generator, inputs, members));
      const secret = inputs.some((path) => (context.base[path] as { secret?: true }).secret);
      generated[generator] = {
        key,
        entries: outputEntries(out.dir, secret),
        from: out.from,
        ...(out.claims.length ? { claims: out.claims } : {}),
        ...(out.machines.length ? { machines: out.machines } : {}),
        ...(out.offers.length ? { offers: out.offers } : {}),
        ...(fleetLayers.length ? { fleet: fleetLayers } : {}),
      };
      outDirs.set(generator, out.dir);
      for (const path of [...Object.keys(known?.entries ?? {}), ...Object.keys(generated[generator].entries)]) changed.add(path);
    }),
  );
  const failed = runs.find((run): run is PromiseRejectedResult => run.status === 'rejected');
  if (failed) throw failed.reason;

  // A generator that is gone takes its outputs along.
  for (const [generator, record] of Object.entries(context.previous ?? {})) if (!generated[generator]) for (const path of Object.keys(record.entries)) changed.add(path);
  checkCollisions(context, generated);
  nameSources(context, generated);
  const contentOf = (path: string): FileContent => {
    for (const [generator, dir] of outDirs) if (generated[generator]!.entries[path]) return { copyFrom: dir + path };
    throw new HomecloudError(`${path} is not an output of a generator that ran`);
  };
  return { generated, contentOf, changed: [...changed].sort() };
}

/** Every output of every generator, merged (collisions were refused). */
export function generatedEntries(generated: Generated): ManifestEntries {
  const entries: ManifestEntries = {};
  for (const record of Object.values(generated)) Object.assign(entries, record.entries);
  return entries;
}

/** The declaration that made a generated path, with the generator. */
export function declarationOf(generated: Generated, path: string): { generator: string; declaration: string | undefined } | undefined {
  for (const [generator, record] of Object.entries(generated)) if (record.entries[path]) return { generator, declaration: record.from[path] };
  return undefined;
}

/** What a built machine's generators made, from generated.json beside its `manifest` (nothing when none ran). */
function generatedBeside(manifest: string): Generated {
  return readBuildRecord(join(dirname(manifest), 'generated.json')) ?? {};
}

/** A tree's entries without the outputs a generator made (directories that still hold something stay). */
export function withoutGenerated(entries: ManifestEntries, generated: Generated | undefined): ManifestEntries {
  const made = generatedEntries(generated ?? {});
  if (!Object.keys(made).length) return entries;
  const base: ManifestEntries = {};
  for (const [path, entry] of Object.entries(entries)) if (!made[path] || made[path].type === 'dir') base[path] = entry;
  const holding = new Set(Object.keys(base).flatMap(ancestorsOf));
  for (const path of Object.keys(made)) if (made[path]!.type === 'dir' && !holding.has(path)) delete base[path];
  return base;
}

/** Entries with every missing ancestor directory of a path added, as the build makes directories. */
export function withAncestors(entries: ManifestEntries): ManifestEntries {
  for (const path of Object.keys(entries)) {
    for (const dir of ancestorsOf(path)) {
      if (entries[dir]) break;
      entries[dir] = { type: 'dir', mode: octal(directoryMode) };
    }
  }
  return entries;
}

/** The declarations of a built machine's generated paths. */
export function declarationsBeside(manifest: string): (path: string) => string | undefined {
  const generated = generatedBeside(manifest);
  return (path) => declarationOf(generated, path)?.declaration;
}

/** A generated path of a built machine: its entry, the generator and the declaration it was made from. */
export function generatedBy(manifest: string, path: string): { entry: ManifestEntry; generator: string; declaration: string | undefined } | undefined {
  const generated = generatedBeside(manifest);
  const made = declarationOf(generated, path);
  return made && { ...made, entry: generated[made.generator]!.entries[path]! };
}

/** The words of the generator's leading comment lines `# <label>: word ...`. */
function headerWords(text: string, label: string): string[] {
  const words: string[] = [];
  const pattern = new RegExp(`^#\\s*${label}:\\s*(.*)$`);
  for (const line of text.split('\n')) {
    if (!line.startsWith('#')) break;
    const match = pattern.exec(line);
    if (match) words.push(...match[1]!.split(/\s+/).filter(Boolean));
  }
  return words;
}

/** `# inputs: <glob> ...` lines of the generator's leading comment. */
export function declaredInputs(text: string): string[] {
  return headerWords(text, 'inputs').filter((glob) => glob.startsWith('/'));
}

/** `# fleet: <layer> ...` lines: the layers whose machines the generator reads (writeFleet). */
export function declaredFleet(text: string): string[] {
  return [...new Set(headerWords(text, 'fleet'))].sort();
}

function identity(entry: ManifestEntry): string {
  return entry.type === 'file' ? `f ${entry.mode} ${entry.sha256}` : entry.type === 'link' ? `l ${entry.target}` : `d ${entry.mode}`;
}

function where(context: GenerateContext, path: string) {
  const file = context.sourceOf(path);
  return file ? { file } : undefined;
}

/** What one run of a generator made: its output directory, and what its standard output said. */
interface GeneratorRun extends GeneratorLines {
  dir: string;
}

/** Run one generator with a copy of its inputs (nothing else of the tree), into an empty directory. */
async function runGenerator(context: GenerateContext, generator: string, inputs: string[], members: FleetMember[] | undefined): Promise<GeneratorRun> {
  const work = mkdtempSync(join(context.scratch, 'generator-'));
  const input = join(work, 'in');
  const out = join(work, 'out');
  mkdirSync(out);
  mkdirSync(input);
  for (const path of inputs) {
    mkdirSync(input + path.slice(0, path.lastIndexOf('/')), { recursive: true });
    const entry = context.base[path]!;
    if (entry.type === 'link') symlinkSync(entry.target, input + path);
    else copyFileSync(context.tree + path, input + path, constants.COPYFILE_FICLONE);
  }
  const fleet = join(work, 'fleet');
  if (members) writeFleet(fleet, members);
  let result: ProcessResult;
  try {
    result = await runProcess(context.tree + generator, [input, out], {
      cwd: work,
      env: { PATH: '/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin', LC_ALL: 'C', HOME: work, HOMECLOUD_MACHINE: context.machine, ...(members ? { HOMECLOUD_FLEET: fleet } : {}) },
      timeout: 120_000,
      check: false,
    });
  } catch (error) {
    if (!(error instanceof HomecloudError)) throw error;
    throw new HomecloudError(`cannot run the generator ${generator}: ${error.message}`, where(context, generator), 'it must be an executable file with a #! line');
  }
  if (result.status !== 0) throw generatorFailure(context, generator, result.status, result.signal, result.stderr);
  return { dir: out, ...readGeneratorLines(result.stdout, inputs, (why) => badLine(context, generator, why)) };
}

/** What a generator says on standard output: the declaration of each output, and what declarations claim and host. */
export interface GeneratorLines {
  from: Record<string, string>;
  claims: Claim[];
  machines: HostedDeclaration[];
  offers: Offer[];
}

const lineFormats = {
  claim: 'claim<TAB><kind><TAB><value><TAB><input path>',
  offer: 'offer<TAB><key><TAB><value><TAB><input path>',
  machine: 'machine<TAB><name><TAB><address><TAB><host key path><TAB><input path>',
};

/**
 * Read a generator's standard output: `<output path><TAB><input path>` lines, `claim` and `machine` lines (a
 * word first, never a "/"); other lines are its own business. A `claim` or `machine` line that is not as its
 * format says is refused (`refuse` throws): a value no one checks would fail far from its cause.
 */
export function readGeneratorLines(stdout: string, inputs: readonly string[], refuse: (why: string) => never): GeneratorLines {
  const read: GeneratorLines = { from: {}, claims: [], machines: [], offers: [] };
  for (const line of stdout.split('\n')) {
    const fields = line.split('\t');
    const word = fields[0]!;
    if (word === 'claim' || word === 'offer' || word === 'machine') {
      const shown = JSON.stringify(line);
      const count = word === 'machine' ? 5 : 4;
      if (fields.length !== count) refuse(`${shown} has ${fields.length} fields, not ${count}: ${lineFormats[word]}`);
      const declaration = fields[count - 1]!;
      if (!inputs.includes(declaration)) refuse(`${shown} names ${JSON.stringify(declaration)}, which is none of its inputs: the last field is the declaration`);
      if (word === 'claim') {
        const [, kind, value] = fields as [string, string, string];
        if (!/^[A-Za-z][A-Za-z0-9_.-]*$/.test(kind)) refuse(`${shown}: the kind is a word (letters, digits, "_", "." and "-"), like address or subnet`);
        if (!value || /\p{Cc}/u.test(value)) refuse(`${shown}: the value is empty or holds a control character`);
        if (!read.claims.some((claim) => claim.kind === kind && claim.value === value && claim.declaration === declaration)) read.claims.push({ kind, value, declaration });
      } else if (word === 'offer') {
        const [, key, value] = fields as [string, string, string];
        if (!/^[A-Za-z][A-Za-z0-9_.-]*$/.test(key)) refuse(`${shown}: the key is a word (letters, digits, "_", "." and "-"), like subnet`);
        if (/\p{Cc}/u.test(value)) refuse(`${shown}: the value holds a control character`);
        if (!read.offers.some((offer) => offer.key === key && offer.value === value && offer.declaration === declaration)) read.offers.push({ key, value, declaration });
      } else {
        const [, name, address, hostKey] = fields as [string, string, string, string];
        const problem = hostedLineProblem(name, address, hostKey);
        if (problem) refuse(`${shown}: ${problem}`);
        if (!read.machines.some((made) => made.name === name && made.declaration === declaration && made.address === address && made.hostKey === hostKey))
          read.machines.push({ name, address, hostKey, declaration });
      }
      continue;
    }
    const [path, declaration] = fields;
    if (path?.startsWith('/') && declaration && inputs.includes(declaration)) read.from[path] = declaration;
  }
  return read;
}

function badLine(context: GenerateContext, generator: string, why: string): never {
  throw new HomecloudError(`the generator ${generator} printed a line homecloud refuses: ${why}`, where(context, generator), `the formats: ${Object.values(lineFormats).join('; ')}`);
}

/** The repository file that makes each claiming or hosting declaration, looked up again in every build (a declaration may move between layers unchanged). */
function nameSources(context: GenerateContext, generated: Generated): void {
  const named = <T extends { declaration: string; file?: string }>(items: T[] | undefined) =>
    items?.map((item) => {
      const { file: _old, ...rest } = item;
      const file = context.sourceOf(item.declaration);
      return file ? { ...rest, file } : (rest as T);
    });
  for (const [generator, record] of Object.entries(generated)) {
    if (!record.claims && !record.machines) continue;
    generated[generator] = { ...record, ...(record.claims ? { claims: named(record.claims) } : {}), ...(record.machines ? { machines: named(record.machines) } : {}) };
  }
}

/** A generator's refusal, with each `<tree path>: message` line naming the repository file that makes the path. */
function generatorFailure(context: GenerateContext, generator: string, code: number, signal: string | null, stderr: string): HomecloudError {
  const lines = stderr.trim().split('\n').filter(Boolean).slice(-10);
  const shown = lines.map((line) => {
    const match = /^(\/[^:]*): (.*)$/.exec(line);
    const source = match && context.base[match[1]!] ? context.sourceOf(match[1]!) : undefined;
    return source ? `${source} (${match![1]}): ${match![2]}` : line;
  });
  const how = signal ? `was killed by ${signal}` : `failed (exit status ${code})`;
  return new HomecloudError(`the generator ${generator} ${how}${shown.length ? `:\n  ${shown.join('\n  ')}` : ''}`, where(context, generator));
}

/** A generator's output directory as manifest entries: files keep their permission bits, directories are 0755. */
function outputEntries(dir: string, secret: boolean): ManifestEntries {
  const entries: ManifestEntries = {};
  const walk = (relative: string) => {
    for (const name of readdirSync(dir + relative).sort()) {
      const path = `${relative}/${name}`;
      const stats = lstatSync(dir + path);
      if (stats.isDirectory()) {
        entries[path] = { type: 'dir', mode: octal(directoryMode) };
        walk(path);
      } else if (stats.isSymbolicLink()) entries[path] = { type: 'link', target: readlinkSync(dir + path) };
      else if (stats.isFile()) entries[path] = fileEntry(stats.mode & 0o7777, fileSha256(dir + path), secret);
      else throw new HomecloudError(`a generator made ${path}, which is neither a file, a link nor a directory`);
    }
  };
  walk('');
  return entries;
}

/** An output must be new to the tree (directories may be shared) and made by one generator only. */
function checkCollisions(context: GenerateContext, generated: Generated): void {
  const owner = new Map<string, string>();
  for (const [generator, record] of Object.entries(generated).sort()) {
    for (const [path, entry] of Object.entries(record.entries)) {
      const base = context.base[path];
      if (generatorPath.test(path)) throw new HomecloudError(`the generator ${generator} made ${path}: a generator may not make generators`, where(context, generator));
      if (base && !(base.type === 'dir' && entry.type === 'dir')) {
        const source = context.sourceOf(path);
        throw new HomecloudError(
          `the generator ${generator} made ${path}, which ${source ? `${source} makes` : 'the tree has'}`,
          where(context, generator),
          'remove or rename the file, or the declaration that makes the generator write it',
        );
      }
      const other = owner.get(path);
      if (other && entry.type !== 'dir') throw new HomecloudError(`the generators ${other} and ${generator} both made ${path}`, where(context, generator), 'a path may come from one generator only');
      owner.set(path, generator);
    }
  }
}
