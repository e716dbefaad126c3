import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { HomecloudError } from '../load/errors.ts';
import { reachProblem, targetOf, type Model } from '../load/model.ts';
import { nameArgument, shownName } from '../load/names.ts';
import { writeFileAtomic } from '../util/fs.ts';
import { shellQuote } from '../util/quote.ts';
import { transportFor } from './ssh.ts';
import type { Target } from './transport.ts';

/**
 * Before a hosted machine (a container) is reached: read its SSH host key through its host and make it the
 * one line of its known_hosts file, hosts further out first. Every time: a container cloned again has a new
 * key, and reading it costs one command over the host's shared connection. Its host made the key, and the
 * host is trusted by its own key: so ssh checks the container strictly, with no first-use prompt.
 */
export async function learnHostKeys(target: Target): Promise<void> {
  if (target.via) await learnHostKeys(target.via);
  if (!target.hostKey || !target.via) return;
  const { path, knownHosts } = target.hostKey;
  const host = target.via;
  const transport = transportFor(host);
  // Exit status 3: no key yet; 4: a link on the way (the file is in the container's root, which the container
  // writes: a link there would be followed on the host). The key is data: cat prints it, nothing runs it.
  const quoted = shellQuote(path);
  const result = await transport.run(`test -e ${quoted} || exit 3; test "$(readlink -f -- ${quoted})" = ${quoted} || exit 4; exec cat -- ${quoted}`);
  if (result.status === 4) throw new HomecloudError(`its host key ${path} on its host ${shownName(host.machine)} is reached through a symbolic link: not read`);
  if (result.status === 3) {
    throw new HomecloudError(
      `its host ${shownName(host.machine)} has not made it yet (a container that has not started: START=no or on-demand)`,
      undefined,
      `start it, e.g. homecloud exec ${nameArgument(host.machine)} -- systemctl start homecloud-container@${target.machine}.service (then its host key is at ${path} there)`,
    );
  }
  if (result.status !== 0) {
    const why = result.status === 255 ? transport.describeFailure(result.stderr) : result.stderr.trim().split('\n').pop() || `exit status ${result.status}`;
    throw new HomecloudError(`cannot read its host key ${path} on its host ${shownName(host.machine)}: ${why}`);
  }
  const key = publicKeyIn(result.stdout);
  if (!key)
    throw new HomecloudError(
      `its host key ${path} on its host ${shownName(host.machine)} is not an OpenSSH public key`,
      undefined,
      'it should hold one line like: ssh-ed25519 AAAA... root@name',
    );
  mkdirSync(dirname(knownHosts), { recursive: true, mode: 0o700 });
  writeFileAtomic(knownHosts, `${target.entry.host} ${key}\n`, { mode: 0o600 });
}

/** The key type and base64 of an OpenSSH public key file's first line (its comment left out: only these go to known_hosts). */
export function publicKeyIn(text: string): string | undefined {
  const match = /^\s*((?:ssh|ecdsa|sk)-[A-Za-z0-9@._+-]+) ([A-Za-z0-9+/]+={0,3})(?:[ \t].*)?$/.exec(text.split('\n')[0] ?? '');
  return match ? `${match[1]} ${match[2]}` : undefined;
}

/** A machine's target once the host keys of the hosted machines on the way to it are known (targetOf, then learnHostKeys). */
export async function readyTarget(model: Model, machine: string): Promise<Target> {
  const target = targetOf(model, machine);
  await learnHostKeys(target);
  return target;
}

/** A machine's target, ready to work on: why it cannot be reached (not in the sandbox, a loop of hops) thrown, else its host key learned. */
export async function reachableTarget(model: Model, machine: string): Promise<Target> {
  const problem = reachProblem(model, machine);
  if (problem) throw problem;
  return readyTarget(model, machine);
}
