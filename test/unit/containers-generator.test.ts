import assert from 'node:assert/strict';
import { readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { baseLibraries, runGenerator } from '../helpers/generator.ts';
import { makeRepo, runCli, writeFiles } from '../helpers/repo.ts';

// The containers layer's build-time generator, run as the build runs it: a tree with its inputs and an empty
// output directory laid out like `/` (test/e2e/containers.test.ts boots what it makes).
const units = 'out/usr/local/lib/systemd/system';

/** Run the generator on declarations (file name under /usr/local/opt/containers/ -> content) and settings. */
function generate(declarations: Record<string, string>, settings = '', { lambda = true, machine = 'h1', more = {} as Record<string, string> } = {}) {
  const files: Record<string, string> = { 'usr/local/etc/default/containers.env': settings, ...more };
  for (const [name, content] of Object.entries(declarations)) files[`usr/local/opt/containers/${name}`] = content;
  const libraries = lambda ? [...baseLibraries, 'lambda/usr/local/lib/lambda/scale-to-zero.bash'] : baseLibraries;
  return runGenerator({ layer: 'containers', files, libraries, machine });
}

test('a container: its instance link, drop-in, slice and boot link; the address it takes and the machine it is', () => {
  const { root, result, read, lines } = generate({ 'web.conf': 'IMAGE=self\nMEMORY=512M\nCPUS=1.5\n' }, 'CONTAINERS_SUBNET=10.250.7.0/24\n');
  assert.equal(result.status, 0, result.stderr);
  assert.equal(readlinkSync(join(root, `${units}/homecloud-container@web.service`)), 'homecloud-container@.service');
  const dropIn = read(`${units}/homecloud-container@web.service.d/50-container.conf`);
  const address = /CONTAINER_ADDRESS=(10\.250\.7\.(\d+))\/24/.exec(dropIn);
  assert.ok(address && Number(address[2]) >= 2 && Number(address[2]) <= 254, dropIn);
  assert.match(dropIn, /CONTAINER_GATEWAY=10\.250\.7\.1 CONTAINER_BRIDGE=hc-containers$/m);
  assert.match(dropIn, /^Slice=container-web\.slice$/m);
  assert.match(read(`${units}/container-web.slice`), /^MemoryMax=512M\nMemorySwapMax=0\nCPUQuota=150%$/m);
  assert.equal(readlinkSync(join(root, `${units}/multi-user.target.wants/homecloud-container@web.service`)), '../homecloud-container@web.service');
  assert.ok(lines.includes(`claim\taddress\t${address[1]}\t/usr/local/opt/containers/web.conf`), result.stdout);
  assert.ok(lines.includes('claim\tsubnet\t10.250.7.0/24\t/usr/local/etc/default/containers.env'), result.stdout);
  assert.ok(lines.includes(`machine\tweb\t${address[1]}\t/var/lib/machines/web/etc/ssh/ssh_host_ed25519_key.pub\t/usr/local/opt/containers/web.conf`));
  assert.ok(lines.includes(`/usr/local/lib/systemd/system/container-web.slice\t/usr/local/opt/containers/web.conf`));
  assert.match(read('out/usr/local/etc/default/containers-network.env'), /^CONTAINERS_GATEWAY=10\.250\.7\.1\/24\nCONTAINERS_FORWARD=no$/m);
  // The same name gives the same address, on any build.
  assert.equal(
    /CONTAINER_ADDRESS=\S+/.exec(
      generate({ 'web.conf': 'IMAGE=self\n' }, 'CONTAINERS_SUBNET=10.250.7.0/24\n').read(`${units}/homecloud-container@web.service.d/50-container.conf`),
    )![0],
    `CONTAINER_ADDRESS=${address[1]}/24`,
  );
});

test('START=no is not enabled; an image other than self is pulled in; ADDRESS= is taken as given', () => {
  const { result, read, list } = generate(
    { 'db.conf': 'IMAGE=pg\nSTART=no\nADDRESS=10.250.7.40\n', 'images/pg.txt': 'postgresql\n' },
    'CONTAINERS_SUBNET=10.250.7.0/24\n',
  );
  assert.equal(result.status, 0, result.stderr);
  assert.deepEqual(list(`${units}/multi-user.target.wants`), ['homecloud-containers-network.service']);
  const dropIn = read(`${units}/homecloud-container@db.service.d/50-container.conf`);
  assert.match(dropIn, /^Requires=homecloud-container-image@pg\.service\nAfter=homecloud-container-image@pg\.service$/m);
  assert.match(dropIn, /CONTAINER_IMAGE=pg CONTAINER_ADDRESS=10\.250\.7\.40\/24/);
});

test('PORTS= forwards through the packet filter; NAT masquerades; GPU= binds and allows; a .nspawn is read by the unit', () => {
  const { result, read } = generate(
    { 'web.conf': 'IMAGE=self\nADDRESS=10.250.7.9\nPORTS=8080:80 5353:53/udp\nGPU=/dev/dri/renderD128 nvidia\n', 'web.nspawn': '[Exec]\nEnvironment=A=1\n' },
    'CONTAINERS_SUBNET=10.250.7.0/24\nCONTAINERS_NAT=yes\n',
  );
  assert.equal(result.status, 0, result.stderr);
  const nft = 'out/usr/local/etc/nftables';
  assert.match(
    read(`${nft}/prerouting.d/50-container-web.nft`),
    /^fib daddr type local tcp dport 8080 dnat ip to 10\.250\.7\.9:80\nfib daddr type local udp dport 5353 dnat ip to 10\.250\.7\.9:53$/m,
  );
  assert.match(read(`${nft}/forward.d/50-container-web.nft`), /^ip daddr 10\.250\.7\.9 tcp dport 80 accept\nip daddr 10\.250\.7\.9 udp dport 53 accept$/m);
  assert.match(read(`${nft}/postrouting.d/50-containers.nft`), /^ip saddr 10\.250\.7\.0\/24 oifname != "hc-containers" masquerade$/m);
  assert.match(read('out/usr/local/etc/default/containers-network.env'), /^CONTAINERS_FORWARD=yes$/m);
  const dropIn = read(`${units}/homecloud-container@web.service.d/50-container.conf`);
  assert.match(dropIn, /^Environment="CONTAINER_GPU=\/dev\/dri\/renderD128 nvidia"$/m);
  assert.match(
    dropIn,
    /^DeviceAllow=\/dev\/dri\/renderD128 rw\nDeviceAllow=char-nvidia-frontend rw\nDeviceAllow=char-nvidia-uvm rw\nDeviceAllow=char-nvidia-caps rw$/m,
  );
  // systemd reads $$ as one $; the path of the declared settings is named, so that a change of it restarts the container.
  assert.match(
    dropIn,
    /^ExecStartPre=\/bin\/sh -c 'cat -- "\$\$1" >> "\/run\/systemd\/nspawn\/\$\$2\.nspawn"' settings \/usr\/local\/opt\/containers\/web\.nspawn web$/m,
  );
});

test('START=on-demand: the scale-to-zero front per port, the container stopped when it is unneeded, its ports open', () => {
  const { result, read, list } = generate({ 'api.conf': 'IMAGE=self\nSTART=on-demand\nPORTS=8081:8000\nIDLE_TIME=30s\n' }, 'CONTAINERS_SUBNET=10.250.7.0/24\n');
  assert.equal(result.status, 0, result.stderr);
  assert.deepEqual(list(`${units}/sockets.target.wants`), ['scale-to-zero-container-api-8081.socket']);
  assert.deepEqual(list(`${units}/multi-user.target.wants`), ['homecloud-containers-network.service'], 'not started at boot');
  const front = read(`${units}/scale-to-zero-container-api-8081.service`);
  assert.match(front, /^Requires=homecloud-container@api\.service$/m);
  assert.match(front, /^ExecStart=\/lib\/systemd\/systemd-socket-proxyd --exit-idle-time=30s 10\.250\.7\.\d+:8000$/m);
  assert.doesNotMatch(front, /^PrivateNetwork=yes$/m, 'the container is on the bridge, not in the front’s network');
  assert.match(read(`${units}/homecloud-container@api.service.d/50-scale-to-zero.conf`), /^StopWhenUnneeded=yes$/m);
  assert.match(read('out/usr/local/etc/nftables/input.d/50-container-api.nft'), /^tcp dport 8081 accept$/m);
});

test('declarations that cannot work fail the build, each naming its file; the others are still checked', () => {
  const cases: [Record<string, string>, RegExp][] = [
    [{ 'a.conf': 'START=boot\n' }, /^\/usr\/local\/opt\/containers\/a\.conf: it needs IMAGE=/m],
    [{ 'a.conf': 'IMAGE=nope\n' }, /^\/usr\/local\/opt\/containers\/a\.conf: IMAGE=nope: there is no \/usr\/local\/opt\/containers\/images\/nope\.txt/m],
    [{ 'a.conf': 'IMAGE=self\nSTART=sometimes\n' }, /START=sometimes is none of boot, no, on-demand/],
    [
      { 'a.conf': 'IMAGE=self\nADDRESS=10.9.9.9\n' },
      /ADDRESS=10\.9\.9\.9 is not a container's address in 10\.250\.7\.0\/24 \(from \d+ on: 10\.250\.7\.2 to 10\.250\.7\.254\)/,
    ],
    [{ 'a.conf': 'IMAGE=self\nADDRESS=10.250.7.1\n' }, /ADDRESS=10\.250\.7\.1 is not a container's address/],
    [{ 'a.conf': 'IMAGE=self\nMEMORY=lots\n' }, /MEMORY=lots is not a size/],
    [{ 'a.conf': 'IMAGE=self\nCPUS=0\n' }, /CPUS=0 is not a number of CPUs/],
    [{ 'a.conf': 'IMAGE=self\nPORTS=80\n' }, /PORTS: "80" is not HOST_PORT:CONTAINER_PORT/],
    [{ 'a.conf': 'IMAGE=self\nSTART=on-demand\n' }, /START=on-demand needs PORTS=/],
    [{ 'a.conf': 'IMAGE=self\nSTART=on-demand\nPORTS=53:53/udp\n' }, /START=on-demand forwards TCP only/],
    [{ 'a.conf': 'IMAGE=self\nGPU=$(reboot)\n' }, /GPU=\$\(reboot\): \$\(reboot\) is neither nvidia nor a device path/],
    [{ 'a.conf': 'IMAGE=self\nMEMROY=1G\n' }, /MEMROY= is not a setting of a container/],
    [{ '-x.conf': 'IMAGE=self\n' }, /"-x" is not a container name/],
  ];
  for (const [declarations, message] of cases) {
    const { result } = generate(declarations, 'CONTAINERS_SUBNET=10.250.7.0/24\n');
    assert.equal(result.status, 1, `${JSON.stringify(declarations)}: ${result.stdout}`);
    assert.match(result.stderr, message);
  }
  const withoutLambda = generate({ 'a.conf': 'IMAGE=self\nSTART=on-demand\nPORTS=80:80\n' }, '', { lambda: false });
  assert.match(withoutLambda.result.stderr, /START=on-demand needs the lambda layer/);
  const subnet = generate({ 'a.conf': 'IMAGE=self\n' }, 'CONTAINERS_SUBNET=10.250.7.0/8\n');
  assert.match(subnet.result.stderr, /^\/usr\/local\/etc\/default\/containers\.env: CONTAINERS_SUBNET=10\.250\.7\.0\/8 is not an IPv4 subnet of \/16 to \/28/m);
  const both = generate({ 'a.conf': 'START=boot\n', 'b.conf': 'IMAGE=self\nCPUS=x\n', 'c.conf': 'IMAGE=self\n' }, 'CONTAINERS_SUBNET=10.250.7.0/24\n');
  assert.equal(both.result.stderr.trim().split('\n').length, 2, both.result.stderr);
});

test('without a subnet in the facts, each machine gets a /24 of 10.250.0.0/16 from its name; no declaration, no output', () => {
  const one = generate({ 'a.conf': 'IMAGE=self\n' }, '', { machine: 'h1' });
  const other = generate({ 'a.conf': 'IMAGE=self\n' }, '', { machine: 'h2' });
  const subnetOf = (lines: string[]) => lines.find((line) => line.startsWith('claim\tsubnet\t'))!.split('\t')[2];
  assert.match(subnetOf(one.lines)!, /^10\.250\.\d+\.0\/24$/);
  assert.notEqual(subnetOf(one.lines), subnetOf(other.lines));
  const none = generate({});
  assert.equal(none.result.status, 0);
  assert.equal(none.result.stdout, '');
  assert.deepEqual(none.list('out'), []);
});

test('two containers of the repository with one address fail the build, naming both declarations and their files', () => {
  const repo = makeRepo({
    'inventory.json': '{}',
    'machines/h1/usr/local/opt/initd/layers/10.txt': '+ containers\n',
    'machines/h2/usr/local/opt/initd/layers/10.txt': '+ containers\n',
    'facts/h1.json': '{"ENV_CONTAINERS_SUBNET": "10.250.7.0/24"}',
    'facts/h2.json': '{"ENV_CONTAINERS_SUBNET": "10.250.8.0/24"}',
    'machines/h1/usr/local/opt/containers/web.conf': 'IMAGE=self\nADDRESS=10.250.7.9\n',
    'machines/h2/usr/local/opt/containers/db.conf': 'IMAGE=self\n',
  });
  assert.equal(runCli(['-C', repo, 'build']).status, 0);
  writeFiles(repo, {
    'machines/h2/usr/local/opt/containers/db.conf': 'IMAGE=self\nADDRESS=10.250.7.9\n',
    'facts/h2.json': '{"ENV_CONTAINERS_SUBNET": "10.250.7.0/24"}',
  });
  const collided = runCli(['-C', repo, 'build']);
  assert.equal(collided.status, 1, collided.stdout);
  const output = collided.stdout + collided.stderr;
  assert.match(
    output,
    /address 10\.250\.7\.9 is claimed by \/usr\/local\/opt\/containers\/(web|db)\.conf of machine h[12] \(machines\/h[12]\/usr\/local\/opt\/containers\/(web|db)\.conf\) and by \/usr\/local\/opt\/containers\/(web|db)\.conf of machine h[12]/,
  );
  assert.match(output, /subnet 10\.250\.7\.0\/24 is claimed by/);
});

test('with the overlay and dns layers: the subnet offered to the peers, the overlay forwarded to the containers, names registered while they run', () => {
  const more = { 'usr/local/etc/default/overlay.env': 'NETWORK=10.233.0.0/16\n', 'usr/local/etc/default/dns.env': 'ZONE=home.arpa\n' };
  const { result, read, lines } = generate({ 'web.conf': 'IMAGE=self\n' }, 'CONTAINERS_SUBNET=10.250.7.0/24\nCONTAINERS_NAT=yes\n', { more });
  assert.equal(result.status, 0, result.stderr);
  assert.ok(lines.includes('offer\tsubnet\t10.250.7.0/24\t/usr/local/etc/default/containers.env'), result.stdout);
  const nft = 'out/usr/local/etc/nftables';
  assert.equal(
    read(`${nft}/forward.d/50-containers-overlay.nft`),
    `# Generated by the containers layer's generator: the overlay's machines and these containers.\niifname "hc-overlay" oifname "hc-containers" ip daddr 10.250.7.0/24 accept\niifname "hc-containers" oifname "hc-overlay" accept\n`,
  );
  // Traffic to the overlay keeps the container's own address: the peers route its subnet back.
  assert.match(read(`${nft}/postrouting.d/50-containers.nft`), /^ip saddr 10\.250\.7\.0\/24 oifname != \{ "hc-containers", "hc-overlay" \} masquerade$/m);
  assert.match(read('out/usr/local/etc/default/containers-network.env'), /^CONTAINERS_FORWARD=yes$/m);
  const dropIn = read(`${units}/homecloud-container@web.service.d/50-container.conf`);
  const address = /CONTAINER_ADDRESS=([0-9.]+)\//.exec(dropIn)![1]!;
  assert.match(dropIn, /^Environment=CONTAINER_DNS=10\.250\.7\.1$/m);
  assert.match(dropIn, new RegExp(`^ExecStartPost=/usr/local/libexec/homecloud/dns-register add web ${address.replaceAll('.', '\\.')}$`, 'm'));
  assert.match(dropIn, /^ExecStopPost=\/usr\/local\/libexec\/homecloud\/dns-register remove web$/m);
});
