import type { InventoryEntry } from '../load/inventory.ts';
import type { ProcessResult, ProcessSession } from '../util/process.ts';

/** A machine and how to reach it: its inventory entry, and what stands between. */
export interface Target {
  machine: string;
  entry: InventoryEntry;
  /** A machine to go through (a bastion, the host of a container or VM): ssh hops through it over its own shared connection. */
  via?: Target;
  /**
   * A machine its `via` hosts (a container): its SSH host key is at `path` on that machine, and is written to
   * `knownHosts`, the file its entry has ssh check, before it is reached (learnHostKeys).
   */
  hostKey?: { path: string; knownHosts: string };
  /** Another way than ssh to reach the machine (tests: a LocalTransport over a scratch root). */
  transport?: Transport;
}

export interface ScriptOptions {
  /** The script's standard input. */
  input?: string;
  /** Hears each line of standard output as it arrives. */
  onLine?: (line: string) => void;
  /** Ends the local end (what runs on the machine decides what that means for it). */
  signal?: AbortSignal;
}

export interface SendOptions {
  /**
   * Files equal to those in this directory on the machine arrive as hard
   * links to them (rsync's --link-dest: relative to the destination, or absolute).
   */
  linkDest?: string;
  /** Add the files to the directory, keeping what it holds, instead of making it an exact copy. */
  add?: boolean;
  signal?: AbortSignal;
}

/**
 * One way to reach a machine. The apply code says what to run and what to
 * send; whether that goes over ssh, through a bastion, or into a local
 * directory is the transport's business.
 */
export interface Transport {
  /** Run a bash script on the machine to its end. Status 255 (and `describeFailure`) when the machine could not be reached. */
  run(script: string, options?: ScriptOptions): Promise<ProcessResult>;
  /** Start a bash script that keeps running while we talk to it. */
  open(script: string, options?: { signal?: AbortSignal }): ProcessSession;
  /**
   * Make `remote` on the machine (its parent made if missing) a copy of the
   * local directory: modes, times and deletions too, owned by the user the
   * transport logs in as. The result says whether it worked.
   */
  sendTree(local: string, remote: string, options?: SendOptions): Promise<ProcessResult>;
  /** Make the local directory a copy of `remote` on the machine. */
  fetchTree(remote: string, local: string): Promise<ProcessResult>;
  /** What a failure to reach the machine means, in words a user can act on, from its standard error. */
  describeFailure(stderr: string): string;
  /** End the shared connection, if any: the next run connects (and checks the host key) anew. */
  close(): void;
}

/** The last lines of a failure's standard error, for a message. */
export function lastLines(stderr: string, count = 3): string {
  return stderr.trim().split('\n').slice(-count).join('; ');
}
