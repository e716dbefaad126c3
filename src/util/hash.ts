import { lazyCrypto } from './lazy.ts';

export function sha256(data: string | Uint8Array): string {
  return lazyCrypto().createHash('sha256').update(data).digest('hex');
}

/** A short hash of many parts (change detection, not security). */
export function fingerprintOf(parts: string[]): string {
  return lazyCrypto().createHash('sha1').update(parts.join('\n\0')).digest('hex');
}

/** A quick 32-bit FNV-1a hash as hex, for file names; loads nothing. */
export function shortHash(text: string): string {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return (hash >>> 0).toString(16).padStart(8, '0');
}
