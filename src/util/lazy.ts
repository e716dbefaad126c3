import { createRequire } from 'node:module';

/**
 * Node built-ins that are slow to load (crypto pulls in streams, child_process,
 * net and tty pull in the network stack, os alone takes 0.4 ms), loaded on
 * first use: a no-change build needs none of them.
 */
let require: NodeJS.Require | undefined;
let crypto: typeof import('node:crypto') | undefined;
let childProcess: typeof import('node:child_process') | undefined;
let net: typeof import('node:net') | undefined;
let tty: typeof import('node:tty') | undefined;
let os: typeof import('node:os') | undefined;

export function lazyCrypto(): typeof import('node:crypto') {
  return (crypto ??= load('node:crypto') as typeof import('node:crypto'));
}

export function lazyChildProcess(): typeof import('node:child_process') {
  return (childProcess ??= load('node:child_process') as typeof import('node:child_process'));
}

export function lazyNet(): typeof import('node:net') {
  return (net ??= load('node:net') as typeof import('node:net'));
}

export function lazyTty(): typeof import('node:tty') {
  return (tty ??= load('node:tty') as typeof import('node:tty'));
}

export function lazyOs(): typeof import('node:os') {
  return (os ??= load('node:os') as typeof import('node:os'));
}

function load(name: string): unknown {
  return (require ??= createRequire(import.meta.url))(name);
}
