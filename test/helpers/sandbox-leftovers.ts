import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { machineCgroups } from '../../src/sandbox/cgroups.ts';
import type { TestSandbox } from './sandbox.ts';

/** Everything a sandbox (of these machines) may leave on the host, so that a test can check it is all gone. */
export function leftovers(box: TestSandbox, machines: string[]) {
  const paths = box.paths;
  const processes = readdirSync('/proc')
    .filter((entry) => /^\d+$/.test(entry))
    .filter((pid) => {
      try {
        const state = readFileSync(`/proc/${pid}/stat`, 'utf8');
        if (state.slice(state.lastIndexOf(')') + 2).startsWith('Z')) return false;
        return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(paths.pool) || readFileSync(`/proc/${pid}/environ`, 'latin1').includes(paths.pool);
      } catch {
        return false;
      }
    });
  const mounts = readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter((line) => line.includes(paths.home));
  // A device set to clear itself is only held by machines of another sandbox booted while this pool was mounted
  // (their mount namespaces copied it, on a host whose / is not shared): it goes when they do.
  const loops = spawnSync('losetup', ['--noheadings', '--list', '--output', 'NAME,AUTOCLEAR', '--associated', paths.poolImage], { encoding: 'utf8' })
    .stdout.split('\n')
    .filter((line) => line.trim() && !/\s1$/.test(line.trim()))
    .join('\n');
  const links = spawnSync('ip', ['-o', 'link', 'show'], { encoding: 'utf8' }).stdout;
  const cgroups = machines.flatMap((name) => machineCgroups(`${paths.bridge}-${name}`)).filter((dir) => existsSync(dir));
  return {
    processes,
    cgroups,
    mounts,
    loops: existsSync(paths.poolImage) ? loops : '',
    bridge: links.includes(`${paths.bridge}:`),
    veths: links.split('\n').filter((line) => line.includes(`master ${paths.bridge} `)),
  };
}

/** The machine directories left in the (unmounted) pool: mounted read-only for a look. */
export function machinesInPool(box: TestSandbox): string[] {
  const look = mkdtempSync(join(tmpdir(), 'homecloud-pool-'));
  try {
    const mounted = spawnSync('mount', ['-o', 'loop,ro', box.paths.poolImage, look], { encoding: 'utf8' });
    assert.equal(mounted.status, 0, mounted.stderr);
    try {
      return existsSync(join(look, 'machines')) ? readdirSync(join(look, 'machines')) : [];
    } finally {
      spawnSync('umount', [look]);
    }
  } finally {
    rmSync(look, { recursive: true, force: true });
  }
}
