import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Generated } from '../build/generate.ts';
import { nameProblem } from './names.ts';
import type { RepoPaths } from './repo.ts';
import { childPath } from '../util/child-path.ts';

/**
 * Hosted machines (FORMAT.md sections 7 and 8): a declaration in a machine's tree (a container's) may make a
 * machine that this machine hosts, as its generator says with a `machine` line. Such a machine needs no
 * inventory.json entry: it is reached through its host, at the address the line gives, with the host key the
 * host holds for it. What the last builds recorded is the source: a host's build record (generated.json).
 */

/** What a generator's `machine` line says. */
export interface HostedDeclaration {
  name: string;
  /** Where its host reaches it: an IPv4 or IPv6 literal. */
  address: string;
  /** Where its SSH public host key is on its host, once it exists. */
  hostKey: string;
  declaration: string;
  /** The repository file that makes the declaration, for messages. */
  file?: string;
}

/** A machine that another one hosts, as the build records say. */
export interface HostedMachine {
  host: string;
  address: string;
  hostKeyPath: string;
  declaration: string;
  file?: string;
}

export type HostedMachines = Map<string, HostedMachine>;

/** The last build record (what its generators made) of each machine that has one. */
export type BuildRecords = Map<string, Generated>;

export function generatedRecordPath(repo: RepoPaths, machine: string): string {
  return `${childPath(repo.build, machine)}/generated.json`;
}

/** Reads a build record: from its file, or from a builder's memory. */
export type RecordReader = (path: string) => Generated | undefined;

/** The build records of those of `machines` whose generators ran. A machine without generators has no file: only looked for. */
export function readBuildRecords(repo: RepoPaths, machines: readonly string[], read: RecordReader = readBuildRecord): BuildRecords {
  const records: BuildRecords = new Map();
  for (const machine of machines) {
    const path = generatedRecordPath(repo, machine);
    const record = existsSync(path) ? read(path) : undefined;
    if (record) records.set(machine, record);
  }
  return records;
}

/** A build record file, or undefined when there is none or it cannot be read. */
export function readBuildRecord(path: string): Generated | undefined {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as Generated;
  } catch {
    return undefined;
  }
}

/** The machines the repository's machines host, from their last build records: name -> its host and how it is reached. */
export function hostedMachines(repo: RepoPaths, machines: readonly string[], read: RecordReader = readBuildRecord): HostedMachines {
  return hostedIn(readBuildRecords(repo, machines, read));
}

/** Every `machine` line of the records, by the host that declares it. */
export function hostingDeclarations(records: BuildRecords): { host: string; made: HostedDeclaration }[] {
  return [...records].flatMap(([host, generated]) =>
    Object.keys(generated)
      .sort()
      .flatMap((generator) => (generated[generator]!.machines ?? []).map((made) => ({ host, made }))),
  );
}

/**
 * Name -> its host. A name that two declarations make is left out: it has no one host, and the build fails
 * the machines involved (claims.ts).
 */
export function hostedIn(records: BuildRecords): HostedMachines {
  const hosted: HostedMachines = new Map();
  const twice = new Set<string>();
  for (const { host, made } of hostingDeclarations(records)) {
    const known = hosted.get(made.name);
    if (known && !(known.host === host && known.declaration === made.declaration)) twice.add(made.name);
    hosted.set(made.name, { host, address: made.address, hostKeyPath: made.hostKey, declaration: made.declaration, ...(made.file ? { file: made.file } : {}) });
  }
  for (const name of twice) hosted.delete(name);
  return hosted;
}

/** Where homecloud keeps a hosted machine's host key, as its host gave it (ssh's UserKnownHostsFile). */
export function knownHostsFile(repo: RepoPaths, machine: string): string {
  return join(repo.var, 'known_hosts', machine);
}

/** Why a `machine` line's fields cannot be used, if they cannot. */
export function hostedLineProblem(name: string, address: string, hostKey: string): string | undefined {
  const problem = nameProblem(name);
  if (problem) return `the machine name ${problem}: a machine name is a single path component, not "." or "..", without "/", NUL or newline`;
  if (!isIpAddress(address)) return `the address ${JSON.stringify(address)} is not an IPv4 or IPv6 address (a literal, no name, no port)`;
  if (!hostKey.startsWith('/') || /\p{Cc}/u.test(hostKey)) return `the host key path ${JSON.stringify(hostKey)} is not an absolute path`;
  return undefined;
}

/** An IPv4 or IPv6 literal (no zone, no brackets, no port): what ssh and the known_hosts file take as they are. */
export function isIpAddress(text: string): boolean {
  const v4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(text);
  if (v4) return v4.slice(1).every((octet) => Number(octet) <= 255 && (octet === '0' || !octet.startsWith('0')));
  if (!/^[0-9A-Fa-f:.]+$/.test(text) || !text.includes(':')) return false;
  // The URL parser knows IPv6's forms (compressed, with an IPv4 tail); node:net would cost every build its load.
  try {
    new URL(`http://[${text}]/`);
    return true;
  } catch {
    return false;
  }
}

/**
 * Which machine of `machines` each one waits for: its host, or the nearest host up its chain, when that is
 * among them. A hosted machine is worked on after its host (a deploy may make or start it there).
 */
export function hostsWithin(machines: readonly string[], hostOf: (machine: string) => string | undefined): Map<string, string> {
  const among = new Set(machines);
  const waits = new Map<string, string>();
  for (const machine of machines) {
    const seen = new Set([machine]);
    for (let host = hostOf(machine); host !== undefined && !seen.has(host); host = hostOf(host)) {
      if (among.has(host)) {
        waits.set(machine, host);
        break;
      }
      seen.add(host);
    }
  }
  // Machines that host each other wait for none (reaching them fails, see reachProblem): waiting would never end.
  for (const machine of machines) {
    const seen = new Set<string>();
    for (let at: string | undefined = machine; at !== undefined && !seen.has(at); at = waits.get(at)) seen.add(at);
    if ([...seen].some((at) => waits.get(at) === machine)) waits.delete(machine);
  }
  return waits;
}
