/**
 * A machine's global addresses from the kernel's own tables, as publish
 * (publish.bash) sends them without a process: /proc/net/fib_trie and
 * /proc/net/if_inet6, a tab for each newline. What `ip -o addr show scope
 * global` lists: IPv4 addresses the machine answers on (a local /32 route;
 * loopback and link-local are not global), then IPv6 addresses of global
 * scope, each once, in a stable order.
 */
export function kernelAddresses(fibTrie: string, ifInet6: string): string[] {
  const ipv4 = new Set<string>();
  let leaf: string | undefined;
  for (const line of fibTrie.split('\t')) {
    // A leaf of the trie ("|-- 10.0.0.5"), then its routes ("/32 host LOCAL").
    const key = /^[ |+-]*\|-- (\d{1,3}(?:\.\d{1,3}){3})\s*$/.exec(line);
    if (key) leaf = key[1];
    else if (!/^\s*\/\d+ /.test(line)) leaf = undefined;
    else if (leaf && /^\s*\/32 host LOCAL\s*$/.test(line)) ipv4.add(leaf);
  }
  const global4 = [...ipv4].filter((address) => !address.startsWith('127.') && !address.startsWith('169.254.'));
  const ipv6 = new Set<string>();
  for (const line of ifInet6.split('\t')) {
    // address, interface index, prefix length, scope (00: global), flags, interface name
    const fields = line.trim().split(/\s+/);
    if (fields.length >= 6 && /^[0-9a-f]{32}$/.test(fields[0]!) && fields[3] === '00') ipv6.add(fields[0]!);
  }
  return [...global4, ...[...ipv6].sort().map(ipv6Text)];
}

/** 32 hex digits as an IPv6 address is written (zeros compressed, RFC 5952): what a URL's host serializer does. */
function ipv6Text(hex: string): string {
  const groups = hex.match(/.{4}/g)!.join(':');
  return new URL(`http://[${groups}]/`).hostname.slice(1, -1);
}
