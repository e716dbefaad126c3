import { readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { HomecloudError } from '../load/errors.ts';

const instancesFile = '/proc/sys/fs/inotify/max_user_instances';
/** inotify instances a machine takes from root's share: its systemd, logind and getty about 7 once booted; twice that leaves room for its services. */
const perMachine = 16;

/**
 * Sandbox machines run as root on the host's kernel (no user namespace), so
 * all of them, of every sandbox on the host, share root's inotify instances
 * (fs.inotify.max_user_instances, 128 on Debian): past about 18 machines a
 * machine's systemd can no longer watch paths and its boot stalls before SSH,
 * until `up` times out. Raised before booting when the machines would need
 * more than root has left; the error says how when it cannot be raised.
 */
export function ensureInotifyInstances(booting: number, log: (line: string) => void): void {
  if (booting === 0) return;
  let limit: number;
  try {
    limit = Number(readFileSync(instancesFile, 'utf8').trim());
  } catch {
    return;
  }
  const needed = rootInotifyInstances() + perMachine * booting;
  if (!(limit < needed)) return;
  const raised = Math.max(needed, 1024);
  try {
    writeFileSync(instancesFile, `${raised}\n`);
  } catch (error) {
    throw new HomecloudError(
      `booting ${booting} more sandbox machines needs about ${needed} inotify instances for root, and this host allows ${limit} (${(error as Error).message})`,
      { file: instancesFile },
      `raise the limit, then start them again: sysctl fs.inotify.max_user_instances=${raised}`,
    );
  }
  log(`raised fs.inotify.max_user_instances from ${limit} to ${raised}: every sandbox machine takes some of root's inotify instances`);
}

/** The inotify instances root's processes hold now (a descriptor shared by several processes counts for each: an upper bound). */
function rootInotifyInstances(): number {
  let count = 0;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      // Charged to the effective user: the second field of Uid.
      if (!/^Uid:\s+\d+\s+0\s/m.test(readFileSync(`/proc/${entry}/status`, 'latin1'))) continue;
      for (const fd of readdirSync(`/proc/${entry}/fd`)) {
        try {
          if (readlinkSync(`/proc/${entry}/fd/${fd}`) === 'anon_inode:inotify') count++;
        } catch {
          // Closed meanwhile.
        }
      }
    } catch {
      // Gone meanwhile, or not ours to read.
    }
  }
  return count;
}
