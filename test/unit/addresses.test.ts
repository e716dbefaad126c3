import assert from 'node:assert/strict';
import { test } from 'node:test';
import { kernelAddresses } from '../../src/facts/addresses.ts';
import { publicOf } from '../../src/facts/probe.ts';

/** /proc/net/fib_trie of a machine with an address on eth0 and one on a second interface, as publish sends it (tabs for newlines). */
const fibTrie = `Main:
  +-- 0.0.0.0/0 3 0 5
     +-- 0.0.0.0/4 2 0 2
        |-- 0.0.0.0
           /0 universe UNICAST
        +-- 10.231.34.0/24 2 0 2
           +-- 10.231.34.0/31 1 0 0
              |-- 10.231.34.0
                 /24 link UNICAST
              |-- 10.231.34.1
                 /32 host LOCAL
           |-- 10.231.34.255
              /32 link BROADCAST
     +-- 127.0.0.0/8 2 0 2
        +-- 127.0.0.0/31 1 0 0
           |-- 127.0.0.0
              /8 host LOCAL
           |-- 127.0.0.1
              /32 host LOCAL
        |-- 127.255.255.255
           /32 link BROADCAST
     |-- 169.254.7.9
        /32 host LOCAL
     +-- 192.0.2.0/24 2 0 2
        |-- 192.0.2.0
           /24 link UNICAST
        |-- 192.0.2.2
           /24 link UNICAST
           /32 host LOCAL
Local:
  +-- 0.0.0.0/0 3 0 5
     |-- 10.231.34.1
        /32 host LOCAL
     |-- 127.0.0.1
        /32 host LOCAL
`.replaceAll('\n', '\t');

const ifInet6 = `fe80000000000000d0b76afffe299536 27a 40 20 80 vb-hcc2524fbyEw
fd000000000000000000000000000002 04 40 00 82     eth0
20010db8000000010000000000000001 04 40 00 80     eth0
fe8000000000000000fc00fffe000001 04 40 20 80     eth0
00000000000000000000000000000001 01 80 10 80       lo
`.replaceAll('\n', '\t');

test("the kernel's tables give what ip lists as global: local IPv4 routes but loopback and link-local, IPv6 of global scope", () => {
  assert.deepEqual(kernelAddresses(fibTrie, ifInet6), ['10.231.34.1', '192.0.2.2', '2001:db8:0:1::1', 'fd00::2']);
});

test('a network address, a broadcast or a default route is no address of the machine; no IPv6 gives IPv4 only', () => {
  assert.deepEqual(kernelAddresses(fibTrie, ''), ['10.231.34.1', '192.0.2.2']);
  assert.deepEqual(kernelAddresses('Main:\t  +-- 0.0.0.0/0 3 0 5\t     |-- 10.0.0.0\t        /8 host LOCAL\t', ''), []);
  assert.deepEqual(kernelAddresses('', 'not a line\tfd00::2 04 40 00 80 eth0\t'), []);
});

test('publish from the kernel tables wins over an ip listing, and either is checked as addresses', () => {
  assert.equal(publicOf('nas', { HC_FIB_TRIE: fibTrie, HC_IF_INET6: ifInet6 }).get('addresses'), '10.231.34.1\n192.0.2.2\n2001:db8:0:1::1\nfd00::2\n');
  assert.equal(publicOf('nas', { HC_ADDRESSES: '10.0.0.5 fd00::5 ' }).get('addresses'), '10.0.0.5\nfd00::5\n');
  assert.throws(() => publicOf('nas', { HC_ADDRESSES: '10.0.0.5 $(reboot) ' }), /not an IP address/);
});
