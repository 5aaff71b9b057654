import path from 'node:path';
import type { TargetOptions } from '../../db/targets.ts';

/** Store URLs are kept absolute so that a target means the same thing from any folder. */
export function storeUrlFor(store: string): string {
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(store)) return store;
  return `file://${path.resolve(store)}`;
}

/** commander collector for repeatable options. */
export function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

export function targetOptions(compression: string | undefined, encryptTo: string[]): TargetOptions {
  return { ...(compression ? { compression } : {}), ...(encryptTo.length > 0 ? { encryptTo } : {}) };
}
