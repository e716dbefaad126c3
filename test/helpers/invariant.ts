import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { shellQuote } from '../../src/util/quote.ts';
import type { TestSandbox } from './sandbox.ts';

interface Entry {
  type: 'file' | 'dir' | 'link';
  mode?: string;
  sha256?: string;
  target?: string;
  owner?: string;
}

/**
 * What homecloud promises after it reports a machine deployed (or "nothing
 * to do"): the machine's managed paths are exactly its current generation's
 * manifest (type, mode with sticky bits, owner and group, content, link
 * target), no apply is left uncommitted, and no unit the generation manages
 * is failed. Read here with the machine's own tools, independently of
 * homecloud's code; returns every way the machine differs.
 */
export function machineProblems(box: TestSandbox, machine: string): string[] {
  return problemsOf(machine, (command) => [...box.sandbox.sshArguments(machine), command]);
}

/** The same for a container of a sandbox machine, read inside it (systemd-run --pipe, through its host). */
export function containerProblems(box: TestSandbox, host: string, container: string): string[] {
  return problemsOf(container, (command) => [
    ...box.sandbox.sshArguments(host),
    `systemd-run -M ${container} --pipe --wait -q -- bash -c ${shellQuote(command)}`,
  ]);
}

/** The check, with `sshArguments` saying how ssh runs a command (standard input passed on) where the machine is. */
function problemsOf(machine: string, sshArguments: (command: string) => string[]): string[] {
  const ssh = (command: string, input?: string) => {
    const result = spawnSync('ssh', sshArguments(command), { input, encoding: 'utf8', maxBuffer: 1 << 28 });
    if (result.status !== 0) throw new Error(`ssh ${machine} ${command}: ${result.stderr}`);
    return result.stdout;
  };
  const problems: string[] = [];
  const text = ssh('cat /var/lib/homecloud/generations/current/manifest.json 2>/dev/null || true');
  if (!text.trim()) return ['no current generation'];
  const manifest = JSON.parse(text) as { owner?: string; entries: Record<string, Entry> };
  const paths = Object.keys(manifest.entries);
  // Per path: type (through links too), mode, owner:group, link target; then sha256 of regular files. NUL-separated.
  const listing = ssh(
    String.raw`xargs -0 -r bash -c 'for p; do if [ -e "$p" ] || [ -L "$p" ]; then stat --printf "%n\0%F\0%a\0%U:%G\0" -- "$p"; if [ -L "$p" ]; then printf "%s\0" "$(readlink -- "$p")"; elif [ -f "$p" ]; then sha256sum < "$p" | cut -c1-64 | tr "\n" "\0"; else printf "\0"; fi; if [ -d "$p" ]; then printf "%s\0" d; else printf "%s\0" -; fi; fi; done' _; printf 'created\0'; cat /var/lib/homecloud/created-dirs 2>/dev/null || true`,
    paths.map((path) => `${path}\0`).join(''),
  );
  const parts = listing.split('\0');
  const createdAt = parts.lastIndexOf('created');
  const created = new Set(parts.slice(createdAt + 1).filter(Boolean));
  const live = new Map<string, { type: string; mode: string; owner: string; content: string; isDir: boolean }>();
  for (let i = 0; i + 6 <= createdAt; i += 6) {
    live.set(parts[i]!, { type: parts[i + 1]!, mode: parts[i + 2]!, owner: parts[i + 3]!, content: parts[i + 4]!, isDir: parts[i + 5] === 'd' });
  }
  const octal = (mode: string) => parseInt(mode, 8);
  for (const [path, want] of Object.entries(manifest.entries)) {
    const have = live.get(path);
    const owner = want.owner ?? manifest.owner ?? 'root:root';
    if (!have) {
      problems.push(`${path}: missing`);
      continue;
    }
    if (want.type === 'file') {
      if (have.type !== 'regular file' && have.type !== 'regular empty file') problems.push(`${path}: a ${have.type}, not a file`);
      else if (have.content !== want.sha256) problems.push(`${path}: content differs`);
      if (octal(have.mode) !== octal(want.mode!)) problems.push(`${path}: mode ${have.mode}, not ${want.mode}`);
      if (have.owner !== owner) problems.push(`${path}: owner ${have.owner}, not ${owner}`);
    } else if (want.type === 'link') {
      if (have.type !== 'symbolic link') problems.push(`${path}: a ${have.type}, not a link`);
      else if (have.content !== want.target) problems.push(`${path}: links to ${have.content}, not ${want.target}`);
      if (have.owner !== owner) problems.push(`${path}: owner ${have.owner}, not ${owner}`);
    } else if (created.has(path)) {
      // A directory homecloud made is all its own.
      if (have.type !== 'directory') problems.push(`${path}: a ${have.type}, not a directory`);
      if (octal(have.mode) !== octal(want.mode!)) problems.push(`${path}: mode ${have.mode}, not ${want.mode}`);
      if (have.owner !== owner) problems.push(`${path}: owner ${have.owner}, not ${owner}`);
    } else {
      // The machine's own directory (or a link to one, as /lib on merged /usr): only the sticky bit is homecloud's.
      if (!have.isDir) problems.push(`${path}: a ${have.type}, not a directory`);
      else if (have.type === 'directory' && (octal(have.mode) & 0o1000) !== (octal(want.mode!) & 0o1000))
        problems.push(`${path}: sticky bit ${have.mode}, not ${want.mode}`);
    }
  }
  if (ssh('[ -e /var/lib/homecloud/generations/pending ] && echo pending || true').trim())
    problems.push('an apply did not commit (generations/pending is there)');
  const units = new Set<string>();
  const wanted = new Set<string>();
  for (const path of paths) {
    const own = /^\/(?:usr\/local\/lib|etc)\/systemd\/system\/([^/]+\.(?:service|socket|timer|path|mount|target))(?:\.d\/[^/]+\.conf)?$/.exec(path)?.[1];
    if (own) units.add(own);
    const enabled = /^\/(?:usr\/local\/lib|etc)\/systemd\/system\/[^/]+\.(?:wants|requires)\/([^/]+)$/.exec(path)?.[1];
    if (enabled) wanted.add(enabled);
  }
  const failed = ssh('systemctl list-units --state=failed --plain --no-legend --full | cut -d" " -f1').split('\n').filter(Boolean);
  for (const unit of failed) {
    const template = unit.replace(/@[^.]*\./, '@.');
    if (units.has(unit) || units.has(template) || wanted.has(unit)) problems.push(`${unit} is failed`);
  }
  // An enabled unit runs (a oneshot may have ended).
  if (wanted.size) {
    const states = ssh(`systemctl show -p Id -p ActiveState -p Type -- ${[...wanted].map((unit) => `'${unit}'`).join(' ')}`)
      .trim()
      .split('\n\n');
    for (const block of states) {
      const fields = Object.fromEntries(block.split('\n').map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]));
      if (fields.ActiveState !== 'active' && fields.Type !== 'oneshot') problems.push(`${fields.Id} is enabled but ${fields.ActiveState}`);
    }
  }
  return problems;
}

/** Assert homecloud's promise on a container of a sandbox machine. */
export function assertContainerIsItsGeneration(box: TestSandbox, host: string, container: string, context = ''): void {
  assert.deepEqual(containerProblems(box, host, container), [], `${container} is not its current generation${context ? ` (${context})` : ''}`);
}

/** Assert homecloud's promise on a machine: it is exactly its current generation, and healthy. */
export function assertMachineIsItsGeneration(box: TestSandbox, machine: string, context = ''): void {
  assert.deepEqual(machineProblems(box, machine), [], `${machine} is not its current generation${context ? ` (${context})` : ''}`);
}
