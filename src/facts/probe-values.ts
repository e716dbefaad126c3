import { lazyNet } from '../util/lazy.ts';
import { HomecloudError } from '../load/errors.ts';
import { nameArgument } from '../load/names.ts';

/**
 * A fact the probe reads from a machine, declared once: how the probe reads
 * it, how its output becomes the fact, and what the fact may hold. A probed
 * value comes from a managed machine, which the operator's host must not
 * trust: it renders literally, but a template may still put it on an
 * m5_esyscmd command line. Each fact may only hold what a real machine reports.
 */
export interface ProbeFact {
  name: string;
  /**
   * Bash: one word, what the probe prints as NAME=VALUE. It may name what
   * probe.bash reads before it prints the facts (os_ID, memory_kb, kernel,
   * arch, systemd_version, wireguard_kernel, nameservers): one line each, as
   * read.
   */
  bash: string;
  /** The fact from what the probe printed. */
  parse: (printed: string) => string;
  pattern: RegExp;
  /** A further check of a value the pattern lets through (a fact the pattern alone cannot tell). */
  valid?: (value: string) => boolean;
  /** What the fact may hold, in words. */
  what: string;
}

const asPrinted = (printed: string) => printed;
/** An os-release value, read (never sourced): one quote off each end. */
const unquoted = (printed: string) => printed.replace(/^["']/, '').replace(/["']$/, '');
const number = { pattern: /^[0-9]+$/, what: 'a number' };
const identifier = { pattern: /^[a-z0-9._-]*$/, what: 'an os-release identifier (lower-case letters, digits, ".", "_" and "-")' };

/** The probe facts, in the order the probe prints them. */
export const probeFacts: readonly ProbeFact[] = [
  {
    name: 'ENV_HOSTNAME',
    bash: '"$HOSTNAME"',
    parse: asPrinted,
    pattern: /^[A-Za-z0-9.-]{1,253}$/,
    what: 'a host name (letters, digits, "-" and ".", at most 253)',
  },
  { name: 'ENV_HOSTTYPE', bash: '"$HOSTTYPE"', parse: asPrinted, pattern: /^[A-Za-z0-9_-]+$/, what: 'a machine type (letters, digits, "_" and "-")' },
  { name: 'ENV_OSTYPE', bash: '"$OSTYPE"', parse: asPrinted, pattern: /^[A-Za-z0-9_.-]+$/, what: 'an OS type (letters, digits, "_", "." and "-")' },
  { name: 'ENV_ID', bash: '"$os_ID"', parse: unquoted, ...identifier },
  {
    name: 'ENV_VERSION_ID',
    bash: '"$os_VERSION_ID"',
    parse: unquoted,
    pattern: /^[A-Za-z0-9._~-]*$/,
    what: 'an os-release version (letters, digits, ".", "_", "~" and "-")',
  },
  { name: 'ENV_VERSION_CODENAME', bash: '"$os_VERSION_CODENAME"', parse: unquoted, ...identifier },
  // What nproc says, counted by the probe from the shell's CPU affinity (probe.bash).
  { name: 'ENV_NPROC', bash: '"$cpus"', parse: asPrinted, ...number },
  // /proc/meminfo's MemTotal, in kB (its default 0 when the line is missing).
  { name: 'ENV_MEMBYTES', bash: '"$memory_kb"', parse: (kb) => (/^[0-9]+$/.test(kb) ? String(BigInt(kb) * 1024n) : kb), ...number },
  { name: 'ENV_HOME', bash: '"$HOME"', parse: asPrinted, pattern: /^\/[A-Za-z0-9._/-]*$/, what: 'an absolute path (letters, digits, ".", "_", "/" and "-")' },
  {
    name: 'ENV_KERNEL',
    bash: '"$kernel"',
    parse: asPrinted,
    pattern: /^[A-Za-z0-9._+~-]+$/,
    what: 'a kernel release (letters, digits, ".", "_", "+", "~" and "-")',
  },
  // dpkg's own architecture (the machine's), else uname -m.
  { name: 'ENV_ARCH', bash: '"$arch"', parse: asPrinted, pattern: /^[A-Za-z0-9_-]+$/, what: 'an architecture name (letters, digits, "_" and "-")' },
  // systemctl show's Version ("252.22-1~deb12u1"), or the first line of systemctl --version ("systemd 252 (252.22-1~deb12u1)").
  { name: 'ENV_SYSTEMD_VERSION', bash: '"$systemd_version"', parse: (printed) => /^(?:systemd )?([0-9]*)/.exec(printed)![1]!, ...number },
  // The port homecloud reached sshd on, as the machine sees it (a port sshd listens on): SSH_CONNECTION is
  // "client address, client port, server address, server port".
  {
    name: 'ENV_SSH_PORT',
    bash: '"${SSH_CONNECTION:-}"',
    parse: (printed) =>
      printed
        .trim()
        .split(/[ \t]+/)
        .slice(3)
        .join(' '),
    pattern: /^[0-9]{0,5}$/,
    what: 'a port number',
  },
  // The running kernel has WireGuard: loaded or built in (/sys/module/wireguard), else a module of it for this kernel.
  { name: 'ENV_WIREGUARD_KERNEL', bash: '"$wireguard_kernel"', parse: asPrinted, pattern: /^(?:yes|no)$/, what: '"yes" or "no"' },
  // The upstream DNS servers: the nameserver lines of systemd-resolved's resolv.conf, else of /etc/resolv.conf; not resolved's stubs.
  {
    name: 'ENV_NAMESERVERS',
    bash: '"$nameservers"',
    parse: asPrinted,
    // IPv4 and IPv6 addresses, an IPv6 one perhaps with its zone ("fe80::1%eth0"); each is checked with isIP.
    pattern: /^[0-9A-Za-z.:%-]+(?: [0-9A-Za-z.:%-]+){0,7}$|^$/,
    valid: (value) => value === '' || value.split(' ').every((address) => lazyNet().isIP(address) !== 0),
    what: 'at most 8 IP addresses, one space apart',
  },
];

/** Facts read from the live machine by the probe (`homecloud facts`). */
export const probeFactNames = probeFacts.map((fact) => fact.name);

const byName = new Map(probeFacts.map((fact) => [fact.name, fact]));

/** A fact as the probe printed it, made the fact (an unknown one is left as printed, for checkProbeFacts to refuse). */
export function parseProbeFact(name: string, printed: string): string {
  return byName.get(name)?.parse(printed) ?? printed;
}

/** Bash: probe_facts prints every probe fact (probe.bash calls it once its shared reads are done). */
export function probeFactsFunction(): string {
  return ['probe_facts() {', ...probeFacts.map((fact) => `  fact ${fact.name} ${fact.bash}`), '}'].join('\n');
}

/**
 * Refuse probed facts that are not what a real machine reports: an unknown
 * fact, or a value outside what its fact may hold. The error names the
 * machine and the fact, and shows the value escaped (it is no secret).
 */
export function checkProbeFacts(machine: string, facts: Record<string, string>): void {
  const where = { file: machine };
  const refresh = `check what the machine reports, then run: homecloud facts --refresh ${nameArgument(machine)}`;
  for (const [key, value] of Object.entries(facts)) {
    const fact = byName.get(key);
    if (!fact) {
      throw new HomecloudError(
        `the probed fact ${JSON.stringify(key)} is not one homecloud reads from a machine`,
        where,
        `homecloud probes only ${probeFactNames.join(', ')}; ${refresh}`,
      );
    }
    if (typeof value !== 'string' || !fact.pattern.test(value) || (fact.valid && !fact.valid(value))) {
      const text = typeof value === 'string' ? value : String(value);
      throw new HomecloudError(
        `the probed fact ${key} (${JSON.stringify(text)}) is not ${fact.what}`,
        where,
        `a value a machine reports is used only when it looks like what a real machine reports; ${refresh}`,
      );
    }
  }
}
