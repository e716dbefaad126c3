import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { shortHash } from '../util/short-hash.ts';

/**
 * Where one sandbox lives. Several can coexist (a user's, the test suite's):
 * each has its own directory and bridge, derived from its directory, and its
 * own subnet: the one its directory suggests unless another interface has it.
 */
export class SandboxPaths {
  readonly state: string;
  readonly key: string;
  readonly knownHosts: string;
  readonly inventory: string;
  readonly pool: string;
  readonly poolImage: string;
  readonly logs: string;
  /** The bridge's name: at most 15 characters. */
  readonly bridge: string;
  /** The subnet this directory suggests (a third octet), used while it is free. */
  private readonly preferredSubnet: number;
  private chosenSubnet?: number;

  constructor(
    readonly home: string = process.env.HOMECLOUD_SANDBOX ?? '/var/lib/homecloud/sandbox',
    readonly imageCache: string = process.env.HOMECLOUD_IMAGE_CACHE ?? '/var/cache/homecloud/images',
  ) {
    this.state = join(home, 'sandbox.json');
    this.key = join(home, 'id_ed25519');
    this.knownHosts = join(home, 'known_hosts');
    this.inventory = join(home, 'inventory.json');
    this.pool = join(home, 'pool');
    this.poolImage = join(home, 'pool.img');
    this.logs = join(home, 'logs');
    const hash = shortHash(home);
    this.bridge = `hc${hash}`.slice(0, 15);
    this.preferredSubnet = 16 + (parseInt(hash.slice(0, 4), 16) % 224);
  }

  /** The third octet of the sandbox's 10.231.x.0/24 network: as chosen when its bridge was made. */
  get subnet(): number {
    if (this.chosenSubnet === undefined) {
      try {
        this.chosenSubnet = Number(readFileSync(join(this.home, 'subnet'), 'utf8'));
      } catch {
        return this.preferredSubnet;
      }
    }
    return this.chosenSubnet;
  }

  /** Settle the subnet when the bridge is made: the suggested one, else the next one no interface uses. */
  chooseSubnet(taken: Set<number>): number {
    let subnet = this.preferredSubnet;
    for (let tries = 0; taken.has(subnet); tries++) {
      if (tries >= 224) throw new Error('every 10.231.x.0/24 subnet for sandboxes is in use');
      subnet = 16 + ((subnet - 16 + 1) % 224);
    }
    writeFileSync(join(this.home, 'subnet'), `${subnet}\n`);
    this.chosenSubnet = subnet;
    return subnet;
  }

  machineDir(name: string): string {
    return join(this.pool, 'machines', name);
  }

  address(index: number): string {
    return `10.231.${this.subnet}.${10 + index}`;
  }

  get hostAddress(): string {
    return `10.231.${this.subnet}.1`;
  }
}
