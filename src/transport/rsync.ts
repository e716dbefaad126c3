import type { SendOptions } from './transport.ts';

/** rsync's arguments for a tree from `from` to `to` (either may be host:path). */
export function treeArguments(from: string, to: string, options: Omit<SendOptions, 'signal'> = {}): string[] {
  // Modification times compared to the nanosecond: rsync's default (whole seconds) took a file rebuilt within the same second, at the same size, for unchanged.
  const exact = ['-a', '--no-owner', '--no-group', '--delete', '--modify-window=-1', ...(options.linkDest ? [`--link-dest=${options.linkDest}`] : [])];
  return [...(options.add ? ['-r'] : exact), '--', `${from}/`, `${to}/`];
}

/** rsync's arguments that make `to` a copy of `from`. */
export function fetchArguments(from: string, to: string): string[] {
  return ['-a', '--delete', '--', `${from}/`, `${to}/`];
}
