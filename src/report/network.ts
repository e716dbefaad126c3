import { isIP } from 'node:net';
import { shownName } from '../load/names.ts';
import { table, type colors } from './output.ts';

/**
 * The operator's view of the overlay and dns layers (`homecloud ls --network`):
 * what one round trip reads on a machine (networkScript), what is made of it
 * (parseNetwork), and how it is shown (networkText). Everything a machine
 * says is data: each line is taken only when it matches a strict pattern
 * (base64 keys, IP addresses, DNS names), and nothing of it reaches a shell.
 * The interface's private key and the peers' preshared keys never leave the
 * machine: the script cuts them out there.
 */

/** The overlay's WireGuard interface (the overlay generator names it). */
export const overlayInterface = 'hc-overlay';
/** The dns layer's resolver configuration, and where containers register their names while they run. */
export const dnsmasqConf = '/usr/local/etc/homecloud/dns/dnsmasq.conf';
export const dnsHostsDir = '/run/homecloud-dns/hosts';
/** A peer whose last handshake is older than this (seconds), or that never shook hands, is a problem (WireGuard renews sessions every 2 minutes). */
export const handshakeLimit = 180;

/**
 * The bash script run on each machine: every line it prints starts with a tag
 * saying where it comes from (awk ends every line, the last one of a file
 * too), so no line read on the machine can pass for another kind:
 *   now SECONDS          the machine's clock
 *   key KEY / port PORT  the interface's public key and port (down TEXT: why there is none)
 *   peer DUMP-LINE       a peer line of `wg show dump`, its preshared key replaced by "-"
 *   addr IP-BRIEF-LINE   `ip -br address` of the interface
 *   dns yes              the resolver's configuration is there; conf LINE: its records
 *   host LINE            a line of a registered container's hosts file
 */
export const networkScript = `export LC_ALL=C
interface=${overlayInterface}
conf=${dnsmasqConf}
tag() { awk -v tag="$1" '{ print tag " " $0 }'; }
# A packet to each peer starts a handshake where none is fresh (an idle mesh makes none): what is read then
# says which peers answer now. Half a second is many round trips on a LAN.
if peers=$(wg show "$interface" allowed-ips 2>/dev/null) && [[ -n $peers ]]; then
  while read -r _ first _; do
    first=\${first%%/*}
    if [[ $first =~ ^[0-9.]+$ ]]; then { echo > "/dev/udp/$first/9"; } 2>/dev/null || true; fi
  done <<< "$peers"
  sleep 0.5
fi
printf 'now %s\\n' "$(date +%s)"
if out=$(wg show "$interface" public-key 2>&1); then
  printf '%s\\n' "$out" | tag key
  wg show "$interface" listen-port 2>/dev/null | tag port
  # The dump's first line is the interface's, with its private key, and a peer's second field is its preshared key: neither leaves this machine.
  wg show "$interface" dump 2>/dev/null | awk -F '\\t' -v OFS='\\t' 'NR > 1 { $2 = "-"; print "peer " $0 }'
else
  printf '%s\\n' "$out" | head -n 3 | tag down
fi
ip -br address show dev "$interface" 2>/dev/null | tag addr
if [[ -r $conf ]]; then
  echo 'dns yes'
  grep -E '^(host-record|srv-host|ptr-record)=' "$conf" | head -n 4096 | tag conf
fi
for file in ${dnsHostsDir}/*; do
  if [[ -f $file && ! -L $file ]]; then head -n 256 -- "$file"; echo; fi
done 2>/dev/null | tag host | head -n 4096
exit 0
`;

export interface OverlayInterface {
  publicKey: string;
  port: number | null;
  /** The interface's addresses, without prefix lengths or link-local ones. */
  addresses: string[];
}

export interface OverlayPeer {
  /** The machine whose published key (var/public/<machine>/wireguard) this is. */
  machine?: string;
  publicKey: string;
  endpoint?: string;
  allowedIps: string[];
  /** Seconds since the epoch; null: never. */
  latestHandshake: number | null;
  /** Seconds since then, by the machine's clock; null: never. */
  ageSeconds: number | null;
}

export type NameKind = 'machine' | 'container' | 'service';

export interface ServedName {
  name: string;
  kind: NameKind;
  address?: string;
}

/** What a machine said of its overlay interface and the names it serves. */
export interface MachineNetwork {
  machine: string;
  /** null: no WireGuard interface (down, or the machine is not on the overlay). */
  interface: OverlayInterface | null;
  peers: OverlayPeer[];
  names: ServedName[];
  /** What is wrong on the machine itself (its interface is not up, its resolver is not configured). */
  problems: string[];
}

export interface ParseContext {
  machine: string;
  /** Machines by their published WireGuard public key. */
  keys: ReadonlyMap<string, string>;
  /** The machine selects the overlay layer: it should have the interface. */
  overlay: boolean;
  /** The machine selects the dns layer: it should have the resolver's configuration. */
  dns: boolean;
  /** The clock to use when the machine did not say its own (seconds since the epoch). */
  now: number;
}

// WireGuard keys are 32 bytes in base64: 43 characters and "=", the last one with its low bits zero.
const keyPattern = /^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/;
const ipv4Pattern = /^(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;
const labelPattern = /^[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$/;

export function isWireguardKey(text: string): boolean {
  return keyPattern.test(text);
}

/** An IPv4 or IPv6 address (no zone, no brackets). */
export function isAddress(text: string): boolean {
  return ipv4Pattern.test(text) || (/^[0-9A-Fa-f:.]{2,45}$/.test(text) && text.includes(':') && isIP(text) === 6);
}

/** ADDRESS/LENGTH. */
export function isNetwork(text: string): boolean {
  const match = /^([^/]+)\/(\d{1,3})$/.exec(text);
  if (!match || !isAddress(match[1]!)) return false;
  return Number(match[2]) <= (match[1]!.includes(':') ? 128 : 32);
}

/** A DNS name of letters, digits, "_" and "-" labels (not an IPv4 address), lower-cased; undefined when it is not one. */
export function dnsName(text: string): string | undefined {
  if (text.length === 0 || text.length > 253 || ipv4Pattern.test(text)) return undefined;
  return text.split('.').every((label) => labelPattern.test(label)) ? text.toLowerCase() : undefined;
}

/** A peer's endpoint: ADDRESS:PORT, [IPv6]:PORT, or (none). */
function endpointOf(text: string): string | undefined | false {
  if (text === '(none)') return undefined;
  const match = /^(?:\[([0-9A-Fa-f:.]+)(?:%[A-Za-z0-9_.-]{1,15})?\]|([0-9.]+)):(\d{1,5})$/.exec(text);
  if (!match) return false;
  const address = match[1] ?? match[2]!;
  if (!isAddress(address) || (match[1] !== undefined) !== address.includes(':') || Number(match[3]) > 65535) return false;
  return text;
}

/**
 * The peers of `wg show INTERFACE dump` lines: eight tab-separated fields
 * (public key, preshared key, endpoint, allowed ips, latest handshake, rx,
 * tx, keepalive). The interface's own line (four fields, the first its
 * private key) and anything else that is not a peer line is ignored; so is
 * the preshared key.
 */
export function parseWireguardDump(lines: Iterable<string>, keys: ReadonlyMap<string, string>, now: number): OverlayPeer[] {
  const peers: OverlayPeer[] = [];
  const seen = new Set<string>();
  for (const line of lines) {
    const fields = line.split('\t');
    if (fields.length !== 8) continue;
    const [publicKey, , endpointField, allowedField, handshakeField, rx, tx, keepalive] = fields as [string, ...string[]];
    if (!isWireguardKey(publicKey) || seen.has(publicKey)) continue;
    const endpoint = endpointOf(endpointField!);
    if (endpoint === false) continue;
    const allowedIps = allowedField === '(none)' ? [] : allowedField!.split(',');
    if (!allowedIps.every(isNetwork)) continue;
    if (!/^\d{1,12}$/.test(handshakeField!) || !/^\d{1,20}$/.test(rx!) || !/^\d{1,20}$/.test(tx!) || !/^(?:off|\d{1,5})$/.test(keepalive!)) continue;
    seen.add(publicKey);
    const handshake = Number(handshakeField);
    const latestHandshake = handshake === 0 ? null : handshake;
    const machine = keys.get(publicKey);
    peers.push({
      ...(machine === undefined ? {} : { machine }),
      publicKey,
      ...(endpoint === undefined ? {} : { endpoint }),
      allowedIps,
      latestHandshake,
      ageSeconds: latestHandshake === null ? null : Math.max(0, now - latestHandshake),
    });
  }
  return peers;
}

/** The addresses of `ip -br address show dev INTERFACE` lines (NAME STATE ADDRESS/LENGTH...), without link-local ones. */
export function parseIpBrief(lines: Iterable<string>, name = overlayInterface): string[] {
  const addresses: string[] = [];
  for (const line of lines) {
    const words = line.trim().split(/\s+/);
    if (words[0] !== name || words.length < 2 || !/^[A-Z_]+$/.test(words[1]!)) continue;
    for (const word of words.slice(2)) {
      if (!isNetwork(word)) continue;
      const address = word.slice(0, word.indexOf('/'));
      if (/^fe[89ab]/i.test(address) || address.startsWith('169.254.')) continue;
      if (!addresses.includes(address)) addresses.push(address);
    }
  }
  return addresses;
}

/**
 * The names a resolver's dnsmasq.conf answers for: `host-record=NAME...,ADDRESS...[,TTL]` (the machine),
 * `srv-host=NAME[,TARGET[,PORT...]]` and `ptr-record=NAME[,TARGET]` (its services). Other lines are ignored.
 */
export function parseDnsmasqConf(lines: Iterable<string>): ServedName[] {
  const names: ServedName[] = [];
  for (const line of lines) {
    const match = /^(host-record|srv-host|ptr-record)=(.*)$/.exec(line);
    if (!match) continue;
    const fields = match[2]!.split(',');
    if (match[1] === 'host-record') {
      if (/^\d{1,10}$/.test(fields.at(-1) ?? '') && fields.length > 1) fields.pop();
      const hostNames = fields.map(dnsName);
      const count = hostNames.findIndex((name) => name === undefined);
      const named = count < 0 ? hostNames.length : count;
      const addresses = fields.slice(named);
      if (named === 0 || !addresses.every(isAddress)) continue;
      const address = addresses[0];
      for (const name of hostNames.slice(0, named)) names.push({ name: name!, kind: 'machine', ...(address ? { address } : {}) });
    } else {
      const name = dnsName(fields[0]!);
      const target = fields[1] === undefined || fields[1] === '' || dnsName(fields[1]) !== undefined;
      const rest = fields.slice(2).every((field) => /^\d{1,5}$/.test(field));
      if (name && target && rest && fields.length <= (match[1] === 'srv-host' ? 5 : 2)) names.push({ name, kind: 'service' });
    }
  }
  return names;
}

/** The containers of hosts-file lines (`ADDRESS NAME...`, as /etc/hosts; # starts a comment). */
export function parseHostsLines(lines: Iterable<string>): ServedName[] {
  const names: ServedName[] = [];
  for (const line of lines) {
    const words = line
      .replace(/\s+#.*$|^#.*$/, '')
      .trim()
      .split(/[ \t]+/);
    if (words.length < 2 || !isAddress(words[0]!)) continue;
    const hostNames = words.slice(1).map(dnsName);
    if (hostNames.some((name) => name === undefined)) continue;
    for (const name of hostNames) names.push({ name: name!, kind: 'container', address: words[0]! });
  }
  return names;
}

const kindOrder: Record<NameKind, number> = { machine: 0, container: 1, service: 2 };

/** What a machine said to networkScript (its standard output), made into its view. */
export function parseNetwork(output: string, context: ParseContext): MachineNetwork {
  const tagged = new Map<string, string[]>();
  for (const line of output.split('\n')) {
    const space = line.indexOf(' ');
    const tag = space < 0 ? line : line.slice(0, space);
    if (!/^[a-z]{1,8}$/.test(tag)) continue;
    const list = tagged.get(tag) ?? [];
    list.push(space < 0 ? '' : line.slice(space + 1));
    tagged.set(tag, list);
  }
  const lines = (tag: string) => tagged.get(tag) ?? [];
  const clock = lines('now').find((text) => /^\d{1,12}$/.test(text));
  const now = clock === undefined ? context.now : Number(clock);
  const problems: string[] = [];

  const publicKey = lines('key').find(isWireguardKey);
  const port = lines('port').find((text) => /^\d{1,5}$/.test(text) && Number(text) <= 65535);
  let overlay: OverlayInterface | null = null;
  if (publicKey) overlay = { publicKey, port: port === undefined ? null : Number(port), addresses: parseIpBrief(lines('addr')) };
  else if (context.overlay) {
    const why = printable(lines('down').join(' ').trim());
    problems.push(`its overlay interface ${overlayInterface} is not up${why ? ` (${why})` : ''}`);
  }
  const peers = overlay ? parseWireguardDump(lines('peer'), context.keys, now) : [];

  if (context.dns && !lines('dns').includes('yes')) problems.push(`it has no ${dnsmasqConf}`);
  const seen = new Set<string>();
  const names = [...parseDnsmasqConf(lines('conf')), ...parseHostsLines(lines('host'))]
    .filter((name) => !seen.has(name.name) && seen.add(name.name))
    .map((name, index) => ({ name, index }))
    .sort((a, b) => kindOrder[a.name.kind] - kindOrder[b.name.kind] || a.index - b.index)
    .map(({ name }) => name);

  return { machine: context.machine, interface: overlay, peers, names, problems };
}

/** Machines by the WireGuard public key each published (var/public/<machine>/wireguard, as readFleetPublic reads it). */
export function machinesByKey(published: ReadonlyMap<string, string> | undefined): Map<string, string> {
  const keys = new Map<string, string>();
  for (const [machine, content] of published ?? []) {
    const key = content.split('\n')[0]!.trim();
    if (isWireguardKey(key) && !keys.has(key)) keys.set(key, machine);
  }
  return keys;
}

/** A peer without a handshake in the last handshakeLimit seconds. */
export function peerProblem(peer: OverlayPeer): boolean {
  return peer.ageSeconds === null || peer.ageSeconds > handshakeLimit;
}

/** A peer as messages name it: its machine, or the start of its key. */
export function peerName(peer: OverlayPeer): string {
  return peer.machine === undefined ? `key ${peer.publicKey.slice(0, 8)}…` : shownName(peer.machine);
}

/**
 * What is wrong with a machine's view, if anything, in one message and a hint: its own problems (no
 * interface, no resolver configuration), and peers without a recent handshake.
 */
export function networkProblem(network: MachineNetwork): { message: string; hint: string } | undefined {
  const stale = network.peers.filter(peerProblem);
  const messages = [...network.problems];
  const hints: string[] = [];
  if (network.problems.length) hints.push(`deploy it: homecloud deploy ${network.machine}`);
  if (stale.length) {
    messages.push(`no handshake in the last ${handshakeLimit / 60} minutes with ${stale.map(peerName).join(', ')}`);
    hints.push(
      'each peer was sent a packet first, so a peer that answers shakes hands: check that its endpoint is reachable on its UDP port and that its overlay is up (ls --network on it)',
    );
  }
  return messages.length ? { message: messages.join('; '), hint: hints.join('; ') } : undefined;
}

/** Text from a machine fit to print: no control characters, not too long. */
export function printable(text: string, length = 200): string {
  const clean = text.replace(/[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]+/gu, ' ').trim();
  return clean.length > length ? `${clean.slice(0, length)}…` : clean;
}

/** One machine in the view: not on the overlay, no answer, or what it said (`overlay`, `dns`: the layers it selects). */
export type NetworkRow =
  { machine: string; skipped: true } | { machine: string; failed: true } | { machine: string; network: MachineNetwork; overlay: boolean; dns: boolean };

type Colors = typeof colors;

function age(seconds: number): string {
  if (seconds < 120) return `${seconds} s ago`;
  if (seconds < 2 * 3600) return `${Math.floor(seconds / 60)} min ago`;
  if (seconds < 2 * 86400) return `${Math.floor(seconds / 3600)} h ago`;
  return `${Math.floor(seconds / 86400)} d ago`;
}

/** The peer's overlay address: its first allowed network that is a single host (its own, not a subnet it routes). */
function peerAddress(peer: OverlayPeer): string {
  const own = peer.allowedIps.find((network) => network.endsWith('/32')) ?? peer.allowedIps.find((network) => network.endsWith('/128'));
  return own ? own.slice(0, own.indexOf('/')) : '';
}

/**
 * The view as text: a block per machine with its overlay addresses and port,
 * a line per peer (one without a handshake in the last handshakeLimit seconds
 * in yellow), and the names it serves.
 */
export function networkText(rows: NetworkRow[], c: Colors): string {
  const width = Math.max(0, ...rows.map((row) => shownName(row.machine).length)) + 3;
  const indent = ' '.repeat(width);
  return rows
    .map((row) => {
      const head = shownName(row.machine).padEnd(width);
      if ('skipped' in row) return head + c.dim('not on the overlay');
      if ('failed' in row) return head + c.red('failed (see its error)');
      const { network } = row;
      const face = network.interface;
      const lines = [
        head +
          (face
            ? [...face.addresses, face.port === null ? '' : `port ${face.port}`].filter(Boolean).join('  ')
            : row.overlay
              ? c.red(`${overlayInterface} is not up`)
              : c.dim('not on the overlay')),
      ];
      const peerRows = network.peers.map((peer) => {
        const paint = peerProblem(peer) ? c.yellow : (text: string) => text;
        const who = peerName(peer);
        return [
          `peer ${paint(who)}`,
          peerAddress(peer),
          peer.endpoint === undefined ? c.dim('no endpoint') : `endpoint ${peer.endpoint}`,
          paint(`handshake ${peer.ageSeconds === null ? 'never' : age(peer.ageSeconds)}`),
        ];
      });
      if (peerRows.length)
        lines.push(
          ...table(peerRows)
            .split('\n')
            .map((line) => indent + line),
        );
      else if (face) lines.push(indent + c.dim('no peers'));
      // The names line starts where the peers' addresses do.
      const label = Math.max(5, ...peerRows.map((cells) => visible(cells[0]!).length)) + 2;
      const names = network.names.map((name) => (name.kind === 'machine' ? name.name : `${name.name} (${name.kind})`));
      if (names.length) lines.push(indent + 'names'.padEnd(label) + names.join(', '));
      else if (row.dns) lines.push(indent + 'names'.padEnd(label) + c.dim('none'));
      return lines.join('\n');
    })
    .join('\n');
}

function visible(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/\u001b\[[0-9;]*m/g, '');
}
