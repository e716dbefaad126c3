import { createRequire } from 'node:module';

let net: typeof import('node:net') | undefined;

/** node:net's isIP, loaded when first asked: node:net loads Node's stream modules, which a build need not pay for (milliseconds). */
export function isIP(text: string): number {
  net ??= createRequire(import.meta.url)('node:net') as typeof import('node:net');
  return net.isIP(text);
}
