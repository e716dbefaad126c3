import { Builder } from '../../build/builder.ts';
import { inventoryEntry } from '../../load/model.ts';
import { shownName } from '../../load/names.ts';
import { errorJson } from '../../load/errors.ts';
import { colors, exitStatus, printMachineError, table } from '../../report/output.ts';
import { repoFrom } from '../context.ts';
import type { GlobalOptions } from '../main.ts';

export async function run(_args: string[], options: GlobalOptions): Promise<number> {
  const { model, machines } = await new Builder(repoFrom(options)).survey();
  if (options.json) {
    const rows = machines.map((m) => ({
      ...m,
      address: address(inventoryEntry(model, m.machine)),
      error: m.error && errorJson(m.error.of(m.machine, 'build')),
    }));
    process.stdout.write(JSON.stringify({ machines: rows }) + '\n');
  } else if (machines.length === 0) {
    process.stdout.write('No machines: create machines/<name>/ or add an entry to inventory.json.\n');
  } else {
    const rows = machines.map((m) => [
      shownName(m.machine),
      address(inventoryEntry(model, m.machine)),
      m.layers.length ? m.layers.join(' ') : colors.dim('(only _)'),
      String(m.files),
      m.state === 'broken' ? colors.red(m.state) : m.state,
    ]);
    process.stdout.write(table(rows, ['MACHINE', 'ADDRESS', 'LAYERS', 'FILES', 'BUILD']) + '\n');
    for (const m of machines) if (m.error) printMachineError(m.machine, m.error);
  }
  return machines.some((m) => m.error) ? exitStatus.machineFailed : exitStatus.ok;
}

function address(entry: { host: string; user: string }): string {
  return shownName(`${entry.user}@${entry.host}`);
}
