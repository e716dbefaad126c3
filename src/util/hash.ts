import { readFileSync } from 'node:fs';
import { lazyCrypto } from './lazy.ts';
import { hasNativeWalker, nativeSha256 } from './native.ts';

export function sha256(data: string | Uint8Array): string {
  if (hasNativeWalker()) return nativeSha256(typeof data === 'string' ? Buffer.from(data) : data)!;
  return lazyCrypto().createHash('sha256').update(data).digest('hex');
}

/** The SHA-256 of a file's content; throws what reading throws. */
export function fileSha256(path: string): string {
  return (hasNativeWalker() && nativeSha256(path)) || sha256(readFileSync(path));
}

/** A hash of many parts (change detection). */
export function fingerprintOf(parts: string[]): string {
  return sha256(parts.join('\n\0'));
}
