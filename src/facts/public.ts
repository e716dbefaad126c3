import { X509Certificate } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { lazyNet } from '../util/lazy.ts';
import { join } from 'node:path';
import { HomecloudError } from '../load/errors.ts';
import type { RepoPaths } from '../load/repo.ts';

/**
 * Public material that machines make for themselves and that other machines
 * need: a certificate whose key never leaves its machine, a public key, the
 * machine's addresses. A unit on the machine writes it to
 * /var/lib/homecloud/public/<name>; the probe reads it; it is kept under
 * var/public/<machine>/<name>, and templates of every machine read it with
 * m5_public(). It comes from a machine, so it is data, checked here before
 * anything uses it: PEM blocks or base64 lines only (nothing m4 or a shell
 * could take for code), a certificate names its own machine, addresses are
 * addresses.
 */
export const publicDirectory = '/var/lib/homecloud/public';

/** The machine's global addresses, which the probe publishes as this name itself. */
export const addressesName = 'addresses';

const namePattern = /^[a-z0-9][a-z0-9._-]{0,63}$/;
const largest = 64 * 1024;
const pemLine = /^(?:-----(?:BEGIN|END) [A-Z0-9 ]+-----|[A-Za-z0-9+/=]{1,100})$/;

export type PublicItems = Map<string, string>;

/** A template that reads public material (m5_public, m5_public_of, m5_public_lines, m5_publishers) renders again when it changes. */
export const readsPublic = /\bm5_publi(?:c|shers)/;

/** Refuse what a machine published unless it is what public material may be; the error names the machine and the item. */
export function checkPublic(machine: string, name: string, content: string): void {
  const refuse = (why: string) => {
    throw new HomecloudError(
      `the public ${name} that ${machine} published ${why}`,
      { file: machine },
      `see ${publicDirectory}/${name} on the machine; a layer's unit writes it there`,
    );
  };
  if (!namePattern.test(name)) refuse('has a name homecloud does not read (lower-case letters, digits, ".", "_" and "-")');
  if (content.length > largest) refuse(`is larger than ${largest >> 10} KiB`);
  const lines = content.split('\n');
  if (lines.at(-1) === '') lines.pop();
  if (name === addressesName) {
    for (const line of lines) if (lazyNet().isIP(line) === 0) refuse(`holds ${JSON.stringify(line.slice(0, 80))}, which is not an IP address`);
    return;
  }
  for (const line of lines)
    if (!pemLine.test(line)) refuse(`holds the line ${JSON.stringify(line.slice(0, 80))}: only PEM blocks and base64 lines are public material`);
  if (/\.(?:crt|pem)$/.test(name) && content.includes('-----BEGIN CERTIFICATE-----')) {
    let subject: string;
    try {
      subject = new X509Certificate(content).subject;
    } catch {
      return refuse('is not a certificate');
    }
    const cn = /^CN=(.*)$/m.exec(subject)?.[1];
    if (cn !== machine) refuse(`is a certificate for ${JSON.stringify(cn ?? subject)}: a machine's certificate must name the machine itself`);
  }
}

function machineDirectory(repo: RepoPaths, machine: string): string {
  return join(repo.var, 'public', machine);
}

/** Keep a machine's public material under var/public/<machine>/, writing only what changed; says whether anything did. */
export function storePublic(repo: RepoPaths, machine: string, items: PublicItems): boolean {
  const dir = machineDirectory(repo, machine);
  let changed = false;
  const known = existsSync(dir) ? readdirSync(dir) : [];
  for (const name of known) {
    if (!items.has(name)) {
      rmSync(join(dir, name), { force: true });
      changed = true;
    }
  }
  for (const [name, content] of items) {
    const path = join(dir, name);
    if (existsSync(path) && readFileSync(path, 'utf8') === content) continue;
    mkdirSync(dir, { recursive: true });
    writeFileSync(path, content);
    changed = true;
  }
  return changed;
}

/** Every machine's public material, by name, then machine (sorted), and a cheap signature of it all. */
export interface FleetPublic {
  items: Map<string, Map<string, string>>;
  signature: string;
}

export function readFleetPublic(repo: RepoPaths): FleetPublic {
  const root = join(repo.var, 'public');
  const items = new Map<string, Map<string, string>>();
  const signature: string[] = [];
  if (!existsSync(root)) return { items, signature: '' };
  for (const machine of readdirSync(root).sort()) {
    const dir = join(root, machine);
    for (const name of readdirSync(dir).sort()) {
      const path = join(dir, name);
      const stats = statSync(path);
      signature.push(`${machine}/${name}:${stats.size}:${stats.mtimeMs}`);
      const byMachine = items.get(name) ?? new Map<string, string>();
      byMachine.set(machine, readFileSync(path, 'utf8'));
      items.set(name, byMachine);
    }
  }
  return { items, signature: signature.join(',') };
}

/** What readFleetPublic reads: var/public/, each machine's directory in it and their files (only the first when absent). */
export function publicFiles(repo: RepoPaths): string[] {
  const root = join(repo.var, 'public');
  if (!existsSync(root)) return [root];
  return [root, ...readdirSync(root).flatMap((machine) => [join(root, machine), ...readdirSync(join(root, machine)).map((name) => join(root, machine, name))])];
}

/**
 * The m4 definitions that m5_public reads: for each name, every machine's
 * material (one after the other, by machine name), its lines as a list, each
 * machine's alone, and the machines that published it. Names of definitions hold "/", so no template can
 * call them by accident; the prelude reaches them with m4_defn.
 */
export function publicDefines(fleet: FleetPublic): string[] {
  const defines: string[] = [];
  for (const [name, published] of fleet.items) {
    // A machine name m4 would cut or split (=, a comma, quotes, parentheses, white space) cannot name a definition or an item.
    const byMachine = new Map([...published].filter(([machine]) => !/[=,[\]()`'\s]/.test(machine)));
    const all = [...byMachine.values()];
    defines.push(`-DHOMECLOUD_PUBLIC//${name}=${all.join('')}`);
    const lines = all.flatMap((content) => content.split('\n')).filter((line) => line !== '');
    defines.push(`-DHOMECLOUD_PUBLIC_LINES//${name}=${lines.join(',')}`);
    for (const [machine, content] of byMachine) defines.push(`-DHOMECLOUD_PUBLIC/${machine}/${name}=${content}`);
    defines.push(`-DHOMECLOUD_PUBLISHERS//${name}=${[...byMachine.keys()].join(',')}`);
  }
  return defines;
}
