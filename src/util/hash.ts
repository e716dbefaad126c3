import { lazyCrypto } from './lazy.ts';

export function sha256(data: string | Uint8Array): string {
  return lazyCrypto().createHash('sha256').update(data).digest('hex');
}

/** A short hash of many parts (change detection, not security). */
export function fingerprintOf(parts: string[]): string {
  return lazyCrypto().createHash('sha1').update(parts.join('\n\0')).digest('hex');
}
