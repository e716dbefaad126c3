import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { BuildRecords } from '../load/hosted.ts';
import type { FleetPublic } from '../facts/public.ts';
import { sha256 } from '../util/hash.ts';

/**
 * The fleet a generator sees (FORMAT.md section 7, `# fleet:`): every machine of the repository that selects
 * one of the layers the generator names, with how homecloud reaches it, what its generators offered in its
 * last build (`offer` lines) and its public material. So a mesh's peers, their addresses and the subnets
 * behind them are build outputs, not runtime negotiation. Hosted machines (containers) are reached through
 * their hosts, and are not members.
 */

/** What a generator's `offer` line says: a value the other machines' fleet generators read. */
export interface Offer {
  key: string;
  value: string;
  declaration: string;
}

/** A machine as a fleet generator sees it. */
export interface FleetMember {
  machine: string;
  layers: string[];
  /** How homecloud reaches it: its inventory host (the sandbox's address with --sandbox). */
  address: string;
  offers: { key: string; value: string }[];
  /** Its public material (var/public/<machine>/), by name. */
  public: Record<string, string>;
}

/** The machines a fleet may hold, with what the build knows of them before it runs any generator. */
export interface FleetCandidate {
  machine: string;
  layers: string[];
  address: string;
}

/** Worked out only when a generator reads it, or a build of a machine that has one asks whether it changed. */
export class Fleet {
  private listed: FleetCandidate[] | undefined;
  private signed: string | undefined;

  constructor(
    private readonly candidates: () => FleetCandidate[],
    private readonly records: BuildRecords,
    private readonly published: FleetPublic,
  ) {}

  /** Changes whenever any member's view does, for a machine's build inputs. */
  get signature(): string {
    return (this.signed ??= this.list().length ? sha256(JSON.stringify(this.members(undefined))) : '');
  }

  private list(): FleetCandidate[] {
    return (this.listed ??= this.candidates());
  }

  /** The members of the fleet of these layers (all candidates when undefined), by machine name. */
  members(layers: readonly string[] | undefined): FleetMember[] {
    return this.list()
      .filter((candidate) => !layers || candidate.layers.some((layer) => layers.includes(layer)))
      .map((candidate) => ({
        ...candidate,
        offers: offersOf(this.records, candidate.machine),
        public: Object.fromEntries([...this.published.items].flatMap(([name, byMachine]) => (byMachine.has(candidate.machine) ? [[name, byMachine.get(candidate.machine)!]] : []))),
      }));
  }
}

/** Every offer of a machine's last build record, in generator order, each key and value once. */
function offersOf(records: BuildRecords, machine: string): { key: string; value: string }[] {
  const generated = records.get(machine) ?? {};
  const seen = new Set<string>();
  const offers: { key: string; value: string }[] = [];
  for (const generator of Object.keys(generated).sort()) {
    for (const { key, value } of generated[generator]!.offers ?? []) {
      const id = `${key}\t${value}`;
      if (seen.has(id)) continue;
      seen.add(id);
      offers.push({ key, value });
    }
  }
  return offers;
}

/**
 * Lay the members out for a generator: `<dir>/<machine>/layers` (one per line), `address`, `offers`
 * (`<key><TAB><value>` lines) and `public/<name>`.
 */
export function writeFleet(dir: string, members: FleetMember[]): void {
  mkdirSync(dir);
  for (const member of members) {
    const own = join(dir, member.machine);
    mkdirSync(join(own, 'public'), { recursive: true });
    writeFileSync(join(own, 'layers'), member.layers.map((layer) => `${layer}\n`).join(''));
    writeFileSync(join(own, 'address'), `${member.address}\n`);
    writeFileSync(join(own, 'offers'), member.offers.map(({ key, value }) => `${key}\t${value}\n`).join(''));
    for (const [name, content] of Object.entries(member.public)) writeFileSync(join(own, 'public', name), content);
  }
}
