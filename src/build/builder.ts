import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { HomecloudError, describeSystemError, isSystemError } from '../load/errors.ts';
import { layerListFiles, machineSources, type LayerDirectories, type Source } from '../load/layers.ts';
import { hopLoop, hostOf, inventoryEntry, loadModel, loopProblem, selectMachines, type Model } from '../load/model.ts';
import { hostedIn, readBuildRecords, type BuildRecords } from '../load/hosted.ts';
import { collisionErrors } from './claims.ts';
import type { RepoPaths } from '../load/repo.ts';
import { defaultsFile, factFiles, loadMachineFacts } from '../facts/machine-facts.ts';
import { probeCachePath } from '../facts/probe-cache.ts';
import { publicFiles, readFleetPublic, type FleetPublic } from '../facts/public.ts';
import type { Facts } from '../facts/facts.ts';
import { eagerLimit } from '../util/eager-limit.ts';
import { mark, now } from '../util/timing.ts';
import type { Manifest, ManifestEntry } from './manifest.ts';
import { layoutMachine, type MachineLayout, type RenderCache, type RenderRecord } from './layout.ts';
import { factsOf, quickLayout, rememberedFacts, type LayoutMemory, type QuickLayout } from './quick.ts';
import { BuildState } from './state.ts';
import { buildFormat } from './build-format.ts';
import { removeUpToDateStamp, writeUpToDateStamp } from './up-to-date.ts';
import { applyTree, emptyTrash, type FileContent, type TreeChanges } from './tree.ts';
import { KeyedFile, KeyedJson, type KeyedRecords, type Replacement } from './keyed-json.ts';
import { generate, generatedEntries, generatorPath, generatorsDir, withAncestors, withoutGenerated, type Generated } from './generate.ts';
import { sortEntries, type ManifestEntries } from './manifest.ts';
import { availableParallelism, nativeTreeSignatures } from '../util/native.ts';
import { treeFiles, walkSource, type SourceTree } from './walk.ts';
import { includeSignatures } from './template-inputs.ts';
import { Fleet } from './fleet.ts';
import { childPath } from '../util/child-path.ts';
import { removeFile, signatureOf } from '../util/fs.ts';
import { noteCodePath, noteRareCodePath } from '../util/code-paths.ts';

export interface MachineResult {
  machine: string;
  status: 'up-to-date' | 'built' | 'failed';
  /** Outputs written or removed in the tree. */
  written: number;
  removed: number;
  /** Paths in the machine's manifest (when it was built in this run). */
  paths?: number;
  error?: HomecloudError;
  notes: string[];
  milliseconds: number;
  /** How a built machine was laidOut: only the changed paths (quick), or every path (full). */
  layout?: 'quick' | 'full';
}

export interface MachineSurvey {
  machine: string;
  layers: string[];
  /** Files and links its sources provide (declared links not counted). */
  files: number;
  state: 'up to date' | 'outdated' | 'not built' | 'broken';
  error?: HomecloudError;
}

export interface BuildReport {
  machines: MachineResult[];
  milliseconds: number;
  /** The repository model the build loaded (inventory, settings, machines). */
  model: Model;
}

export interface BuildOptions {
  machines?: string[];
  /** Paths known to have changed since the last build by this builder (from a file watcher); others are trusted. */
  changed?: string[];
  /** Render every template again (for commands that read more than the template's inputs). */
  rerender?: boolean;
  /** Build the hosts of the machines too (deploy, plan): what they host, and how it is reached, is then current. */
  withHosts?: boolean;
}

/** The files of var/build/<machine>/. */
export function machineOutput(repo: RepoPaths, machine: string) {
  const dir = childPath(repo.build, machine);
  return {
    dir,
    tree: `${dir}/tree`,
    manifest: `${dir}/manifest.json`,
    renders: `${dir}/renders.json`,
    /** What the last full layout leaves for quick rebuilds. */
    memory: `${dir}/layout.json`,
    /** What the machine's generators made, and from which inputs (generate.ts). */
    generated: `${dir}/generated.json`,
    /** Present while the tree is being changed: a tree found with it is verified, not trusted. */
    marker: `${dir}/building`,
  };
}

/**
 * Builds machines' trees incrementally. One instance may be kept warm
 * (`watch`): it remembers source walks between builds.
 */
export class Builder {
  private state: BuildState | undefined;
  private walks = new Map<string, SourceTree>();
  /** Files of var/build/ this builder read or wrote (manifests, render caches): their text, and their value once parsed. */
  private written = new Map<string, { text: string | Buffer; signature: string | undefined; value?: unknown }>();
  /** Native signatures of this build's sources, taken in one call. */
  private signatures = new Map<string, string | undefined>();
  /** Layer directories found in this build. */
  private layerDirectories: LayerDirectories = new Map();
  /** Each machine's sources as this build found them (or why they cannot be read): read once, used by every step. */
  private sourceLists = new Map<string, Source[] | HomecloudError>();
  /** The machines' public material as this build found it (var/public/). */
  private fleet: FleetPublic = { items: new Map(), signature: '' };
  /** The machines as fleet generators see them, as of the last build records (`# fleet:`). */
  private fleetView: Fleet | undefined;
  private readonly limit = eagerLimit(availableParallelism() + 1);

  constructor(readonly repo: RepoPaths) {}

  async build(options: BuildOptions = {}): Promise<BuildReport> {
    const started = now();
    const startedAt = Date.now();
    mark('build');
    removeUpToDateStamp(this.repo);
    const state = this.loadState();
    mark('state loaded');
    this.forgetWalks(options.changed);
    this.forgetSources();
    this.fleet = readFleetPublic(this.repo);
    const model = await loadModel(this.repo, state, (path) => this.generatedBefore(path));
    const named = selectMachines(model, options.machines ?? []);
    const machines = options.withHosts ? withTheirHosts(model, named) : named;
    mark('model loaded');
    const built = new Map<string, MachineResult>();
    const reachedAs = (machine: string) => JSON.stringify(inventoryEntry(model, machine));
    let records: BuildRecords = this.readRecords(model);
    let pending = machines;
    for (let pass = 0; pending.length && pass < 3; pass++) {
      const before = new Map(pending.map((machine) => [machine, reachedAs(machine)]));
      this.fleetView = this.fleetOf(model, records);
      for (const result of await this.buildAll(model, pending, state, options.rerender === true && pass === 0)) built.set(result.machine, after(built.get(result.machine), result));
      records = this.readRecords(model);
      // What the generators just said may change how a machine of this build is reached (a container's address), which its
      // probe facts go with: it is built again. And a host that a declaration new in this build names is built too.
      const moved = pending.filter((machine) => reachedAs(machine) !== before.get(machine));
      const hosts = options.withHosts ? withTheirHosts(model, named).filter((machine) => !built.has(machine)) : [];
      // A fleet generator that ran before another machine offered something new runs again with it.
      const readers = machines.filter((machine) => readsFleet(records.get(machine)) && !moved.includes(machine));
      const fleetChanged = readers.length > 0 && this.fleetOf(model, records).signature !== this.fleetView.signature;
      pending = [...moved, ...hosts, ...(fleetChanged ? readers : [])];
    }
    this.fleetView = this.fleetOf(model, records);
    const results = [...built.values()];
    if (results.length === model.machines.length) this.removeGoneMachines(model, state);
    this.failCollisions(model, records, results);
    if (!options.machines?.length && !options.changed && !options.rerender && results.every((result) => result.status === 'up-to-date')) {
      try {
        this.stampUpToDate(model, results, state, startedAt);
      } catch {
        // Without a stamp the next build looks at everything: nothing is lost but time.
      }
    }
    mark('state saved');
    return { machines: results, milliseconds: now() - started, model };
  }

  private async buildAll(model: Model, machines: string[], state: BuildState, rerender: boolean): Promise<MachineResult[]> {
    this.signSources(model, machines);
    mark('sources signed');
    const failedWalks = new Map<string, HomecloudError>();
    const results = await Promise.all(machines.map((machine) => this.buildMachine(model, machine, state, failedWalks, rerender)));
    mark('machines done');
    state.save((dir) => this.currentPaths(dir));
    for (const result of results) if (result.status === 'built') removeFile(machineOutput(this.repo, result.machine).marker);
    emptyTrash(results.filter((result) => result.removed > 0).map((result) => machineOutput(this.repo, result.machine).tree));
    return results;
  }

  /** Whether a generator of the machine's last build read the fleet. */
  private readsFleet(machine: string): boolean {
    const path = machineOutput(this.repo, machine).generated;
    return existsSync(path) && readsFleet(this.generatedBefore(path));
  }

  /** The repository's machines, not hosted ones, as fleet generators see them with these build records. */
  private fleetOf(model: Model, records: BuildRecords): Fleet {
    const candidates = () =>
      model.machines
        .filter((machine) => !hostOf(model, machine))
        .flatMap((machine) => {
          try {
            const layers = this.sourcesOf(model, machine).filter((source) => source.kind === 'layer').map((source) => source.name);
            return [{ machine, layers, address: inventoryEntry(model, machine).host }];
          } catch {
            return []; // A machine whose sources cannot be read fails its own build, and is no member.
          }
        });
    return new Fleet(candidates, records, this.fleet);
  }

  /** Every machine's last build record, this build's included; the model's hosted machines follow them. */
  private readRecords(model: Model): BuildRecords {
    const records = readBuildRecords(this.repo, model.machines, (path) => this.generatedBefore(path));
    model.hosted = hostedIn(records);
    return records;
  }

  /**
   * A machine built in this run whose declarations collide with others' (a claimed value, a hosted machine's
   * name), or that is reached through itself, fails. Its tree stays as built: the check runs in every build,
   * so that it keeps failing, up to date or not, until the collision is gone.
   */
  private failCollisions(model: Model, records: BuildRecords, results: MachineResult[]): void {
    const collisions = collisionErrors(records);
    for (const result of results) {
      if (result.status === 'failed') continue;
      const error = collisions.get(result.machine) ?? (hopLoop(model, result.machine)?.includes(result.machine) ? loopProblem(model, result.machine) : undefined);
      if (!error) continue;
      result.status = 'failed';
      result.error = error;
    }
  }

  /** The layout of one machine without writing anything (for `explain`). */
  async layout(machine: string): Promise<{ model: Model; layout: MachineLayout; trees: SourceTree[]; facts: Facts }> {
    this.forgetSources();
    const state = this.loadState();
    this.fleet = readFleetPublic(this.repo);
    const model = await loadModel(this.repo, state, (path) => this.generatedBefore(path));
    selectMachines(model, [machine]);
    const trees = this.sourcesOf(model, machine).map((source) => this.walk(source));
    const { facts, probed } = this.factsFor(model, machine, trees);
    // Renders still good are taken from the last build: a template's commands need not run again to be explained.
    const renders = this.remembered(machineOutput(this.repo, machine).renders, (text) => JSON.parse(text) as RenderCache) ?? {};
    const layout = await this.layoutWith(machine, trees, facts, probed, renders, state, model.settings.readOutside);
    return { model, layout, trees, facts };
  }

  /** Each machine's sources and state, without building (for `ls`). */
  async survey(): Promise<{ model: Model; machines: MachineSurvey[] }> {
    this.forgetSources();
    const state = this.loadState();
    this.fleet = readFleetPublic(this.repo);
    const model = await loadModel(this.repo, state, (path) => this.generatedBefore(path));
    const records = this.readRecords(model);
    this.fleetView = this.fleetOf(model, records);
    const collisions = collisionErrors(records);
    const machines = model.machines.map((machine): MachineSurvey => {
      try {
        const trees = this.sourcesOf(model, machine).map((source) => this.walk(source));
        const dests = new Set(trees.flatMap((tree) => tree.entries.map((entry) => entry.dest)));
        const output = machineOutput(this.repo, machine);
        const built = existsSync(output.manifest) && !existsSync(output.marker);
        const fresh = built && state.fingerprint(machine) === machineFingerprint(this.inputs(model, machine, state.includes(machine)), trees);
        const layers = trees.map((tree) => tree.source).filter((s) => s.kind === 'layer').map((s) => s.name);
        // Declarations that collide with others' fail the machine's every build: so it is not shown as built.
        const collision = collisions.get(machine);
        if (collision) return { machine, layers, files: dests.size, state: 'broken', error: collision };
        return { machine, layers, files: dests.size, state: fresh ? 'up to date' : built ? 'outdated' : 'not built' };
      } catch (error) {
        return { machine, layers: [], files: 0, state: 'broken', error: error instanceof HomecloudError ? error : systemError(error, machine) };
      }
    });
    return { model, machines };
  }

  private async buildMachine(model: Model, machine: string, state: BuildState, failedWalks: Map<string, HomecloudError>, rerender: boolean): Promise<MachineResult> {
    const started = now();
    const result: MachineResult = { machine, status: 'up-to-date', written: 0, removed: 0, notes: [], milliseconds: 0 };
    const output = machineOutput(this.repo, machine);
    try {
      const sources = this.sourcesOf(model, machine);
      const trees = sources.map((source) => {
        const failed = failedWalks.get(source.dir);
        if (failed) throw failed;
        try {
          return this.walk(source);
        } catch (error) {
          if (error instanceof HomecloudError) failedWalks.set(source.dir, error);
          throw error;
        }
      });
      const inputs = this.inputs(model, machine, state.includes(machine));
      const fingerprint = machineFingerprint(inputs, trees);
      const trusted = !existsSync(output.marker) && existsSync(output.manifest) && !rerender;
      if (trusted && state.fingerprint(machine) === fingerprint) {
        noteCodePath('build:up-to-date');
        return result;
      }
      // The last build's manifest and render cache, parsed only when the whole is needed (a quick build looks up a few records),
      // and read only when first looked into (a quick build starts its renders before).
      let manifestRead = false;
      let manifestRecords: KeyedRecords | undefined;
      const manifest = () => {
        if (!manifestRead) manifestRecords = trusted ? this.keyedFile(output.manifest) : undefined;
        manifestRead = true;
        return manifestRecords;
      };
      const wholeManifest = () => manifest() && this.remembered(output.manifest, (text) => JSON.parse(text) as Manifest);
      let renderRecords: KeyedRecords | undefined;
      const renderFile = () => (renderRecords ??= this.keyedFile(output.renders));
      let renders: RenderCache | undefined;
      const readRenders = () => (renders ??= (manifest() && this.remembered(output.renders, (text) => JSON.parse(text) as RenderCache)) || {});
      const memory = trusted && this.remembered(output.memory, (text) => JSON.parse(text) as LayoutMemory);
      const quick =
        memory && !rerender
          ? await quickLayout({
              repo: this.repo,
              trees,
              inputs,
              memory,
              readOutside: model.settings.readOutside,
              built: sourceFingerprints(state.fingerprint(machine)),
              treeAt: (dir, at) => state.treeAt(dir, at),
              recordTree: (dir, at, files) => state.recordTree(dir, at, files),
              previous: (dest) => manifest()?.get<ManifestEntry>(dest),
              render: (path) => renderFile()?.get<RenderRecord>(path),
              hash: (entry) => state.hash(entry.source.dir, entry.contentPath, entry.contentSignature),
              facts: () => factsOf(memory) ?? loadMachineFacts(this.repo, machine, inventoryEntry(model, machine), memory.defaults).facts,
              fleet: this.fleet,
              schedule: (task) => this.limit(task),
            })
          : undefined;
      const records = quick && manifest();
      if (records && memory && quick) {
        writeFileSync(output.marker, '');
        const { changes, paths } = await this.commitQuick(machine, output, trees, { manifest: records, memory, quick, wholeManifest, readRenders, renderFile });
        state.setFingerprint(machine, fingerprint);
        noteCodePath(quick.renders ? 'build:quick-render' : 'build:quick');
        Object.assign(result, { status: 'built', layout: 'quick', written: changes.written, removed: changes.removed, paths });
        return result;
      }

      const previous = wholeManifest();
      const { facts, probed } = this.factsFor(model, machine, trees);
      const layoutWith = (renders: RenderCache) => this.layoutWith(machine, trees, facts, probed, renders, state, model.settings.readOutside);
      const layout = await layoutWith(rerender ? {} : readRenders());
      const desired = layout.manifest.entries;

      // A template output that changed but was not rendered in this run (its render was cached for another path).
      for (const [dest, { entry: from }] of layout.provenance) {
        if (from.rule !== 'template' || layout.rendered.has(from.path)) continue;
        const entry = desired[dest];
        const before = previous?.entries[dest];
        if (before?.type === 'file' && entry?.type === 'file' && before.sha256 === entry.sha256) continue;
        const again = await layoutWith({});
        Object.assign(layout, { rendered: again.rendered, renders: again.renders });
        break;
      }

      if (!previous) mkdirSync(output.dir, { recursive: true });
      writeFileSync(output.marker, '');
      const contentOf = (dest: string): FileContent => {
        const from = layout.provenance.get(dest)!.entry;
        if (from.rule === 'template') return { data: layout.rendered.get(from.path)! };
        return { copyFrom: from.contentPath };
      };
      // The last build's generated outputs stay in place while the generators are looked at.
      const before = previous ? this.generatedBefore(output.generated) : undefined;
      const held = { ...generatedEntries(before ?? {}), ...desired };
      const changes = applyTree(output.tree, previous?.entries, held, contentOf);
      layout.manifest.entries = await this.generateInto(machine, output, trees, desired, held, before, changes);
      this.write(output.manifest, layout.manifest, JSON.stringify(layout.manifest) + '\n');
      this.write(output.renders, layout.renders, JSON.stringify(layout.renders));
      // The files the templates include are inputs from now on (a template may have started or stopped including one).
      state.setIncludes(machine, layout.includes);
      const laidOut = this.inputs(model, machine, layout.includes);
      // What each source held, for the quick builds to come (they compare file by file with it).
      for (const tree of trees) state.recordTree(tree.source.dir, tree.fingerprint, () => treeFiles(tree));
      const layoutMemory: LayoutMemory = {
        inputs: laidOut,
        sources: trees.map((tree) => [tree.source.dir, tree.fingerprint, tree.entries.length, tree.directories.size]),
        contested: layout.contested,
        environmentKey: layout.environmentKey,
        defaults: this.defaultsOf(trees),
        volatile: layout.volatile,
        paths: Object.keys(layout.manifest.entries).length,
        facts: rememberedFacts(facts),
        prelude: layout.prelude(),
      };
      this.write(output.memory, layoutMemory, JSON.stringify(layoutMemory));
      const builtFrom = machineFingerprint(laidOut, trees);
      state.setFingerprint(machine, layout.volatile ? `volatile:${builtFrom}` : builtFrom);
      noteRareCodePath('build:full');
      Object.assign(result, { status: 'built', layout: 'full', written: changes.written, removed: changes.removed, notes: layout.notes });
      result.paths = Object.keys(layout.manifest.entries).length;
    } catch (error) {
      result.status = 'failed';
      result.error = error instanceof HomecloudError ? error : systemError(error, machine);
    } finally {
      result.milliseconds = now() - started;
    }
    return result;
  }

  /**
   * Put a quick layout's changes in the machine's tree, manifest and render cache. Without generators only the
   * changed entries are looked at, and only their bytes are written again; with them, the whole manifest is.
   */
  private async commitQuick(
    machine: string,
    output: ReturnType<typeof machineOutput>,
    trees: SourceTree[],
    last: {
      manifest: KeyedRecords;
      memory: LayoutMemory;
      quick: QuickLayout;
      wholeManifest: () => Manifest | undefined;
      readRenders: () => RenderCache;
      renderFile: () => KeyedRecords | undefined;
    },
  ): Promise<{ changes: TreeChanges; paths: number }> {
    const { manifest, memory, quick } = last;
    const before = this.generatedBefore(output.generated);
    const replacements = !before && memory.paths !== undefined && !manifest.hasKeyUnder(generatorsDir) ? manifest.replacements(quick.entries) : undefined;
    let result: { changes: TreeChanges; paths: number };
    if (replacements) {
      const previousEntries: ManifestEntries = {};
      for (const dest of quick.changed) previousEntries[dest] = manifest.get<ManifestEntry>(dest)!;
      const changes = applyTree(output.tree, previousEntries, quick.entries, quick.contentOf, quick.changed);
      removeFile(output.generated);
      this.patch(output.manifest, manifest, replacements);
      result = { changes, paths: memory.paths! };
    } else {
      const previous = last.wholeManifest()!;
      const entries = { ...previous.entries, ...quick.entries };
      const changes = applyTree(output.tree, previous.entries, entries, quick.contentOf, quick.changed);
      const next = { ...previous, entries: await this.generateInto(machine, output, trees, withoutGenerated(entries, before), entries, before, changes) };
      this.write(output.manifest, next, JSON.stringify(next) + '\n');
      result = { changes, paths: Object.keys(next.entries).length };
    }
    if (quick.renders) {
      // The render cache as the quick layout read it (a changed template was looked up in it).
      const cache = last.renderFile();
      const found = cache?.replacements(quick.renders);
      if (cache && found) this.patch(output.renders, cache, found);
      else {
        const whole = { ...last.readRenders(), ...quick.renders };
        this.write(output.renders, whole, JSON.stringify(whole));
      }
    }
    return result;
  }

  /** What the last build's generators made, as recorded beside a trusted tree. */
  private generatedBefore(path: string): Generated | undefined {
    return this.remembered(path, (text) => JSON.parse(text) as Generated);
  }

  /**
   * Run the machine's generators whose inputs changed and put their outputs in its tree, which holds `held`
   * (the `base` entries and the last build's outputs); counts into `changes`. Returns the whole tree's entries.
   */
  private async generateInto(machine: string, output: ReturnType<typeof machineOutput>, trees: SourceTree[], base: ManifestEntries, held: ManifestEntries, before: Generated | undefined, changes: TreeChanges): Promise<ManifestEntries> {
    if (!before && !Object.keys(base).some((path) => generatorPath.test(path))) {
      removeFile(output.generated);
      return base;
    }
    const scratch = mkdtempSync(join(output.dir, 'generate-'));
    try {
      const result = await generate({
        machine,
        tree: output.tree,
        base,
        previous: before,
        scratch,
        sourceOf: (path) => sourceOf(this.repo, trees, path),
        schedule: (task) => this.limit(task),
        ...(this.fleetView ? { fleet: this.fleetView } : {}),
      });
      const entries = withAncestors({ ...base, ...generatedEntries(result.generated) });
      const candidates = [...result.changed, ...Object.keys(entries).filter((path) => !held[path])];
      const more = applyTree(output.tree, held, entries, (path) => result.contentOf(path), [...new Set(candidates)]);
      changes.written += more.written;
      changes.removed += more.removed;
      if (Object.keys(result.generated).length) this.write(output.generated, result.generated, JSON.stringify(result.generated));
      else removeFile(output.generated);
      return sortEntries(entries);
    } finally {
      rmSync(scratch, { recursive: true, force: true });
    }
  }

  private factsFor(model: Model, machine: string, trees: SourceTree[]) {
    return loadMachineFacts(this.repo, machine, inventoryEntry(model, machine), this.defaultsOf(trees));
  }

  /** The layer defaults files of the machine's sources, in precedence order. */
  private defaultsOf(trees: SourceTree[]) {
    return trees
      .flatMap((tree) => tree.entries.filter((entry) => defaultsFile.test(entry.dest) && entry.rule !== 'template').sort((a, b) => (a.dest < b.dest ? -1 : 1)))
      .map((entry) => ({ path: entry.contentPath, file: this.repo.display(entry.path) }));
  }

  private layoutWith(machine: string, trees: SourceTree[], facts: Facts, probed: boolean, renders: RenderCache, state: BuildState, readOutside: readonly string[]): Promise<MachineLayout> {
    return layoutMachine({
      repo: this.repo,
      machine,
      trees,
      facts,
      probed,
      renders,
      readOutside,
      fleet: this.fleet,
      hash: (entry) => state.hash(entry.source.dir, entry.contentPath, entry.contentSignature),
      schedule: (task) => this.limit(task),
    });
  }

  /** What a machine's output depends on besides its sources: build format, inventory entry, fact files, included files. */
  private inputs(model: Model, machine: string, includes: readonly string[]): string {
    const files = factFiles(this.repo, machine);
    return [
      buildFormat,
      this.repo.stdlibLayers,
      JSON.stringify(inventoryEntry(model, machine)),
      `json=${signatureOf(files.json) ?? ''}`,
      `env=${signatureOf(files.env) ?? ''}`,
      `probe=${signatureOf(probeCachePath(this.repo, machine)) ?? ''}`,
      // What links may read decides whether a machine builds at all; only when set, so that existing builds stay valid.
      ...(model.settings.readOutside.length ? [`readOutside=${JSON.stringify(model.settings.readOutside)}`] : []),
      // The machines' public material (m5_public), likewise.
      ...(this.fleet.signature ? [`public=${this.fleet.signature}`] : []),
      // What the fleet said, for a machine whose generators read it.
      ...(this.fleetView && this.readsFleet(machine) && this.fleetView.signature ? [`fleet=${this.fleetView.signature}`] : []),
      ...(includes.length ? [includeSignatures(includes)] : []),
    ].join('\n');
  }

  /** Layer lists and directories are read again by each build (a warm builder lives on). */
  private forgetSources(): void {
    this.layerDirectories = new Map();
    this.sourceLists = new Map();
  }

  /** machineSources, once per machine and build. */
  private sourcesOf(model: Model, machine: string): Source[] {
    let sources = this.sourceLists.get(machine);
    if (!sources) {
      try {
        sources = machineSources(this.repo, machine, model.settings.stdlib, this.layerDirectories);
      } catch (error) {
        if (!(error instanceof HomecloudError)) throw error;
        sources = error;
      }
      this.sourceLists.set(machine, sources);
    }
    if (sources instanceof HomecloudError) throw sources;
    return sources;
  }

  /** Sign every source the machines use, in one native call that walks them in parallel. */
  private signSources(model: Model, machines: string[]): void {
    const dirs = new Set<string>();
    for (const machine of machines) {
      try {
        for (const source of this.sourcesOf(model, machine)) {
          if (!this.walks.has(source.dir)) dirs.add(source.dir);
        }
      } catch {
        // Reported when the machine is built.
      }
    }
    this.signatures = nativeTreeSignatures([...dirs]);
  }

  private walk(source: Source): SourceTree {
    let tree = this.walks.get(source.dir);
    if (!tree) {
      const state = this.loadState();
      tree = walkSource(source, this.repo, state.sourceMemory(source.dir), () => state.listingMemory(source.dir), this.signatures);
      if (tree.changed) state.noteWalkChanged();
      this.walks.set(source.dir, tree);
    }
    return tree;
  }

  /** Drop remembered walks: all of them, or those that contain a changed path. */
  private forgetWalks(changed: string[] | undefined): void {
    const inside = (path: string, dir: string) => path === dir || path.startsWith(`${dir}/`);
    const dirs = [...this.walks.keys()];
    // A path outside every walked source (facts, a "!" link's target, a new layer) may change any of them.
    if (!changed || changed.some((path) => !dirs.some((dir) => inside(path, dir)))) {
      this.walks.clear();
      return;
    }
    for (const dir of dirs) if (changed.some((path) => inside(path, dir))) this.walks.delete(dir);
  }

  private loadState(): BuildState {
    return (this.state ??= new BuildState(this.repo.build, (path) => this.repo.display(path)));
  }

  /** A file this builder wrote, from memory while nobody else changed it; else read again. */
  private remembered<T>(path: string, parse: (text: string) => T): T | undefined {
    const known = this.written.get(path);
    const signature = signatureOf(path);
    if (known && known.signature === signature) {
      try {
        return (known.value ??= parse(known.text.toString())) as T;
      } catch {
        return undefined;
      }
    }
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch {
      return undefined;
    }
    try {
      const value = parse(text);
      this.written.set(path, { text, signature, value });
      return value;
    } catch {
      return undefined;
    }
  }

  /**
   * Write a file of var/build/<machine>/ unless it already holds that text,
   * and remember its value. In place, not atomically: these are written
   * while the machine's `building` marker says not to trust them.
   */
  private write(path: string, value: unknown, text: string | Buffer): void {
    const known = this.written.get(path);
    if (!known || !sameText(known.text, text) || known.signature !== signatureOf(path)) writeFileSync(path, text);
    this.written.set(path, { text, signature: signatureOf(path), value });
  }

  /**
   * A file of records keyed by path, looked into without parsing it whole: from memory while nobody else
   * changed it, else where it lies (KeyedFile) or read whole without the native walker.
   */
  private keyedFile(path: string): KeyedRecords | undefined {
    const known = this.written.get(path);
    const signature = signatureOf(path);
    if (known && known.signature === signature) return new KeyedJson(Buffer.isBuffer(known.text) ? known.text : Buffer.from(known.text));
    if (signature === undefined) return undefined;
    const inPlace = KeyedFile.of(path);
    if (inPlace) return inPlace;
    let bytes: Buffer;
    try {
      bytes = readFileSync(path);
    } catch {
      return undefined;
    }
    this.written.set(path, { text: bytes, signature });
    return new KeyedJson(bytes);
  }

  /**
   * Make replacements in a file read with keyedFile. When each keeps its
   * length (a file's new hash, a template's new render key) only those bytes
   * are written, in place, like the whole file under the `building` marker.
   */
  private patch(path: string, file: KeyedRecords, replacements: Replacement[]): void {
    if (!replacements.length) return;
    if (replacements.every(({ start, end, bytes }) => bytes.length === end - start)) {
      const fd = openSync(path, 'r+');
      try {
        for (const { start, bytes } of replacements) {
          for (let done = 0; done < bytes.length; ) done += writeSync(fd, bytes, done, bytes.length - done, start + done);
        }
      } finally {
        closeSync(fd);
      }
      file.patched(replacements);
      if (file.held) this.written.set(path, { text: file.held, signature: signatureOf(path) });
      else this.written.delete(path);
      return;
    }
    this.write(path, undefined, file.replaced(replacements));
  }

  /**
   * Everything this build's finding (every machine up to date) rests on: what the model, the layer lists, the
   * machines' inputs (inputs()) and their outputs' state were read from, and the sources' native signatures.
   * Without a native signature for every source there is no stamp.
   */
  private stampUpToDate(model: Model, results: MachineResult[], state: BuildState, startedAt: number): void {
    if (this.repo.sandboxInventory) return;
    const files = new Set([this.repo.settingsFile, this.repo.inventoryFile, this.repo.machines, this.repo.layers, this.repo.stdlibLayers]);
    const trees = new Map<string, string>();
    for (const { machine } of results) {
      const output = machineOutput(this.repo, machine);
      const facts = factFiles(this.repo, machine);
      for (const path of [this.repo.machineDir(machine), output.marker, output.manifest, output.generated, facts.json, facts.env, probeCachePath(this.repo, machine)]) files.add(path);
      for (const path of layerListFiles(this.repo, machine)) files.add(path);
      for (const path of state.includes(machine)) files.add(path);
      for (const source of this.sourcesOf(model, machine)) {
        const signature = this.signatures.get(source.dir);
        if (!signature) return;
        trees.set(source.dir, signature);
      }
    }
    for (const path of publicFiles(this.repo)) files.add(path);
    // Last: the state as this build left it.
    files.add(state.statePath);
    writeUpToDateStamp(this.repo, {
      machines: results.map((result) => result.machine),
      files: [...files],
      trees: [...trees],
    }, startedAt);
  }

  /**
   * Outputs of machines that are no longer in the repository go too, and what is remembered of sources that no
   * machine uses any more (a removed layer, the repository's old place): the next build would sign them first.
   */
  private removeGoneMachines(model: Model, state: BuildState): void {
    const gone = state.builtMachines().filter((name) => !model.machines.includes(name));
    for (const name of gone) {
      rmSync(machineOutput(this.repo, name).dir, { recursive: true, force: true });
      state.setFingerprint(name, undefined);
    }
    const lists = model.machines.map((machine) => this.sourceLists.get(machine));
    const used = lists.every(Array.isArray) ? new Set(lists.flatMap((sources) => (sources as Source[]).map((source) => source.dir))) : undefined;
    const forgotten = used !== undefined && state.forgetSourcesBut(used);
    if (gone.length || forgotten) state.save();
  }

  /** The content paths of a source walked in this build (undefined when it was not walked). */
  private currentPaths(dir: string): Set<string> | undefined {
    const tree = this.walks.get(dir);
    return tree && new Set(tree.entries.map((entry) => entry.contentPath));
  }
}

function sameText(a: string | Buffer, b: string | Buffer): boolean {
  if (typeof a === 'string' && typeof b === 'string') return a === b;
  return (typeof a === 'string' ? Buffer.from(a) : a).equals(typeof b === 'string' ? Buffer.from(b) : b);
}

/** One machine's result over the passes of a build: built when any pass built it. */
function after(earlier: MachineResult | undefined, later: MachineResult): MachineResult {
  if (!earlier) return later;
  const status = later.status === 'up-to-date' && earlier.status === 'built' ? 'built' : later.status;
  return {
    ...earlier,
    ...later,
    status,
    written: earlier.written + later.written,
    removed: earlier.removed + later.removed,
    notes: [...earlier.notes, ...later.notes],
    milliseconds: earlier.milliseconds + later.milliseconds,
  };
}

/** The machines, then the machines that host them (their hosts' hosts too) that are not among them. */
function withTheirHosts(model: Model, machines: string[]): string[] {
  const all = new Set(machines);
  for (const machine of machines) {
    for (let host = hostOf(model, machine)?.host; host !== undefined && model.machines.includes(host); host = hostOf(model, host)?.host) all.add(host);
  }
  return [...all];
}

/** Everything a machine's output depends on, as plain text (hashing it would cost loading a hash function): its inputs, then a line per source. */
function machineFingerprint(inputs: string, trees: SourceTree[]): string {
  return [inputs, ...trees.map((tree) => `${tree.source.dir}=${tree.fingerprint}`)].join('\n');
}

/** The per-source lines of a machine fingerprint: source directory -> its fingerprint. */
function sourceFingerprints(fingerprint: string | undefined): Map<string, string> {
  const sources = new Map<string, string>();
  for (const line of fingerprint?.split('\n') ?? []) {
    const equals = line.lastIndexOf('=');
    if (line.startsWith('/') && equals > 0) sources.set(line.slice(0, equals), line.slice(equals + 1));
  }
  return sources;
}

/** The repository file that makes a path of a machine's tree (the machine's own wins, as in the merge). */
function sourceOf(repo: RepoPaths, trees: SourceTree[], path: string): string | undefined {
  for (const tree of [...trees].reverse()) {
    const entry = tree.entries.find((candidate) => candidate.dest === path);
    if (entry) return repo.display(entry.path);
  }
  return undefined;
}

/** A system error (a full disk, a file gone) as the machine's failure; anything else is a bug, and is thrown on. */
function systemError(error: unknown, machine: string): HomecloudError {
  if (!isSystemError(error)) throw error;
  const path = (error as NodeJS.ErrnoException).path;
  return new HomecloudError(
    `building ${machine} failed: ${describeSystemError(error)}`,
    path ? { file: path } : undefined,
    (error as NodeJS.ErrnoException).code === 'ENOSPC' ? 'free some disk space and build again' : undefined,
  );
}

/** Whether a machine's build record has a generator that reads the fleet. */
function readsFleet(generated: Generated | undefined): boolean {
  return Object.values(generated ?? {}).some((record) => record.fleet?.length);
}
