import { createRequire } from 'node:module';

/**
 * Node built-ins that are slow to load (crypto pulls in streams, child_process
 * pulls in net), loaded on first use: a no-change build needs neither.
 */
let require: NodeJS.Require | undefined;
let crypto: typeof import('node:crypto') | undefined;
let childProcess: typeof import('node:child_process') | undefined;

export function lazyCrypto(): typeof import('node:crypto') {
  return (crypto ??= load('node:crypto') as typeof import('node:crypto'));
}

export function lazyChildProcess(): typeof import('node:child_process') {
  return (childProcess ??= load('node:child_process') as typeof import('node:child_process'));
}

function load(name: string): unknown {
  return (require ??= createRequire(import.meta.url))(name);
}
