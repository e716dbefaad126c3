import { closeSync, mkdirSync, openSync, writeSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { HomecloudError } from '../../load/errors.ts';
import { machineNameRule, nameArgument, nameProblem } from '../../load/names.ts';
import { exitStatus } from '../../report/output.ts';
import { lstatExists } from '../../util/fs.ts';
import type { GlobalOptions } from '../options.ts';

/** The files of a new cloud repository whose first machine is `machine`, by path. */
export function newRepositoryFiles(machine: string): Record<string, string> {
  const argument = nameArgument(machine);
  return {
    'homecloud.json': `{
  // homecloud's settings (docs/FORMAT.md, "homecloud.json"): the standard layers for names layers/ lacks,
  // how many machines are worked on at once, and how many generations each machine keeps for rollback.
  "stdlib": true,
  "jobs": 16,
  "generations": 5
}
`,
    'inventory.json': `{
  // How to reach each machine over SSH, by its name under machines/. A machine not listed here is reached
  // by its name (ssh ${argument}, with what ~/.ssh/config says). For example:
  //   "nas": { "host": "192.168.1.20", "user": "root", "options": ["-o", "ConnectTimeout=5"] }
  ${JSON.stringify(machine)}: { "host": ${JSON.stringify(machine)}, "user": "root" }
}
`,
    '.gitignore': `# homecloud's build output and caches.
var/
# Secret facts: keep them out of git.
facts/*.env
`,
    [`machines/${machine}/usr/local/opt/initd/layers/10-standard.txt`]: `# The layers of ${machine}, in order, after the base layer "_" (which every machine has).
# maintenance: security upgrades, fstrim, btrfs scrub and balance, time sync; a failed job alerts.
+ maintenance
`,
    [`facts/${machine}.json`]: '{}\n',
    'README.md': `# My cloud

A homecloud repository: what every machine should be, as files.

\`\`\`
homecloud.json          settings
inventory.json          how to reach each machine over SSH
facts/<machine>.json    facts of a machine (facts/<machine>.env: secret ones, kept out of git)
layers/<layer>/...      a layer: a tree laid out like /, shared by the machines that list it
machines/<machine>/...  a machine's own tree, and its list of layers in usr/local/opt/initd/layers/*.txt
\`\`\`

## Next steps

1. Say how to reach ${machine}: edit its entry in \`inventory.json\` (it needs root over SSH, bash,
   systemd and apt).
2. Check the repository, as CI will: \`homecloud check\` (\`--boot\` also boots each machine as a
   sandbox machine and deploys it).
3. See what a deploy would do, then do it: \`homecloud plan ${argument}\`, \`homecloud deploy ${argument}\`.
4. See how the fleet is doing: \`homecloud status\`.
5. Add a machine: a directory under \`machines/\` with its layer list, and an entry in \`inventory.json\`.
   Add your own layer: a directory under \`layers/\`, listed as \`+ <layer>\` in a machine's list.
6. Put this directory under git (\`git init\`), and run \`homecloud check\` in CI: a ready GitHub
   Actions workflow is in homecloud's \`docs/ci/homecloud-check.yml\`.

\`homecloud --help\` lists every command; \`homecloud <command> --help\` says more.
`,
  };
}

/** `homecloud init [dir]`: a new cloud repository, never over an existing file. */
export async function run([dir = '.']: string[], options: GlobalOptions & { machine?: string }): Promise<number> {
  const machine = options.machine ?? 'first';
  const problem = nameProblem(machine);
  if (problem) throw new HomecloudError(`--machine ${JSON.stringify(machine)}: ${problem}`, undefined, machineNameRule);
  const root = resolve(dir);
  const files = newRepositoryFiles(machine);
  const existing = Object.keys(files).filter((path) => lstatExists(join(root, path)));
  if (existing.length) {
    throw new HomecloudError(
      `${existing.map((path) => join(dir, path)).join(', ')} already exist${existing.length === 1 ? 's' : ''}: nothing was written`,
      undefined,
      'init starts a new repository: choose an empty directory (homecloud init DIR), or move those files away',
    );
  }
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    // "wx": a file made meanwhile is not overwritten either.
    const fd = openSync(join(root, path), 'wx');
    try {
      writeSync(fd, text);
    } finally {
      closeSync(fd);
    }
  }
  if (options.json) process.stdout.write(JSON.stringify({ repository: root, machine, files: Object.keys(files) }) + '\n');
  else {
    process.stdout.write(
      `made a cloud repository in ${root}:\n${Object.keys(files)
        .map((path) => `  ${path}\n`)
        .join('')}`,
    );
    process.stdout.write(`next: say how to reach ${machine} in inventory.json, then: homecloud check; homecloud deploy ${nameArgument(machine)} (README.md)\n`);
  }
  return exitStatus.ok;
}
