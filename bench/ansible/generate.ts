// node --import tsx bench/ansible/generate.ts DIR: write the comparison's two
// expressions of one desired state, DIR/homecloud and DIR/ansible, to read them.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { writeHomecloudRepository } from './homecloud.ts';
import { writeAnsibleProject } from './playbook.ts';
import { desiredState } from './state.ts';

const dir = process.argv[2];
if (!dir || existsSync(dir)) {
  console.error('usage: node --import tsx bench/ansible/generate.ts DIR (a directory that does not exist yet)');
  process.exit(2);
}
const state = desiredState();
writeHomecloudRepository(join(dir, 'homecloud'), state);
writeAnsibleProject(join(dir, 'ansible'), state);
console.log(
  `${join(dir, 'homecloud')}: the homecloud repository\n${join(dir, 'ansible')}: the Ansible project (inventory.ini and ansible.cfg are written by the bench, for its sandbox machines)`,
);
