import { join } from 'node:path';
import { shortHash } from '../util/hash.ts';

/**
 * Where one sandbox lives. Several can coexist (a user's, the test suite's):
 * each has its own directory, bridge and subnet, derived from its directory.
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
  /** The third octet of the sandbox's 10.231.x.0/24 network. */
  readonly subnet: number;

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
    this.subnet = 16 + (parseInt(hash.slice(0, 4), 16) % 224);
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
