import { HomecloudError } from '../load/errors.ts';
import { nameArgument } from '../load/names.ts';
import { probeFactNames } from './facts.ts';

/**
 * What each probe fact may hold. A probed value comes from a managed machine,
 * which the operator's host must not trust: it renders literally, but a
 * template may still put it on an m5_esyscmd command line. Each fact may only
 * hold what a real machine reports.
 */
const rules: Record<string, { pattern: RegExp; what: string }> = {
  ENV_HOSTNAME: { pattern: /^[A-Za-z0-9.-]{1,253}$/, what: 'a host name (letters, digits, "-" and ".", at most 253)' },
  ENV_HOSTTYPE: { pattern: /^[A-Za-z0-9_-]+$/, what: 'a machine type (letters, digits, "_" and "-")' },
  ENV_ARCH: { pattern: /^[A-Za-z0-9_-]+$/, what: 'an architecture name (letters, digits, "_" and "-")' },
  ENV_OSTYPE: { pattern: /^[A-Za-z0-9_.-]+$/, what: 'an OS type (letters, digits, "_", "." and "-")' },
  ENV_ID: { pattern: /^[a-z0-9._-]*$/, what: 'an os-release identifier (lower-case letters, digits, ".", "_" and "-")' },
  ENV_VERSION_CODENAME: { pattern: /^[a-z0-9._-]*$/, what: 'an os-release identifier (lower-case letters, digits, ".", "_" and "-")' },
  ENV_VERSION_ID: { pattern: /^[A-Za-z0-9._~-]*$/, what: 'an os-release version (letters, digits, ".", "_", "~" and "-")' },
  ENV_NPROC: { pattern: /^[0-9]+$/, what: 'a number' },
  ENV_MEMBYTES: { pattern: /^[0-9]+$/, what: 'a number' },
  ENV_SYSTEMD_VERSION: { pattern: /^[0-9]+$/, what: 'a number' },
  ENV_HOME: { pattern: /^\/[A-Za-z0-9._/-]*$/, what: 'an absolute path (letters, digits, ".", "_", "/" and "-")' },
  ENV_KERNEL: { pattern: /^[A-Za-z0-9._+~-]+$/, what: 'a kernel release (letters, digits, ".", "_", "+", "~" and "-")' },
  // The port homecloud reached sshd on, as the machine sees it (a port sshd listens on).
  ENV_SSH_PORT: { pattern: /^[0-9]{0,5}$/, what: 'a port number' },
};

/**
 * Refuse probed facts that are not what a real machine reports: an unknown
 * fact, or a value outside what its fact may hold. The error names the
 * machine and the fact, and shows the value escaped (it is no secret).
 */
export function checkProbeFacts(machine: string, facts: Record<string, string>): void {
  const where = { file: machine };
  const refresh = `check what the machine reports, then run: homecloud facts --refresh ${nameArgument(machine)}`;
  for (const [key, value] of Object.entries(facts)) {
    const rule = rules[key];
    if (!rule || !probeFactNames.includes(key)) {
      throw new HomecloudError(`the probed fact ${JSON.stringify(key)} is not one homecloud reads from a machine`, where, `homecloud probes only ${probeFactNames.join(', ')}; ${refresh}`);
    }
    if (typeof value !== 'string' || !rule.pattern.test(value)) {
      const text = typeof value === 'string' ? value : String(value);
      throw new HomecloudError(`the probed fact ${key} (${JSON.stringify(text)}) is not ${rule.what}`, where, `a value a machine reports is used only when it looks like what a real machine reports; ${refresh}`);
    }
  }
}
