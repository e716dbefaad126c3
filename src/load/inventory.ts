/** How to reach a machine over SSH (FORMAT.md section 8). */
export interface InventoryEntry {
  host: string;
  user: string;
  /** Extra arguments for ssh, e.g. ["-p", "2222"]. */
  options: string[];
}

export type Inventory = Record<string, InventoryEntry>;

export const machineNamePattern = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

export function withDefaults(name: string, entry: Partial<InventoryEntry> = {}): InventoryEntry {
  return { host: entry.host ?? name, user: entry.user ?? 'root', options: entry.options ?? [] };
}
