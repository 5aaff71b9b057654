import { BackstopError } from './errors.ts';

/** A target's name: the first folder of its backups in the store, so kept to what every store and shell takes. */
export const TARGET_NAME = /^[a-z0-9][a-z0-9_.-]{0,62}$/;
export const TARGET_NAME_RULE = 'must be 1 to 63 lowercase letters, digits, ".", "_" or "-", starting with a letter or digit';

/** Throws INVALID_INPUT, naming `field`, unless `name` is a valid target name. */
export function assertTargetName(name: string, field = 'name'): void {
  if (!TARGET_NAME.test(name)) {
    throw new BackstopError('INVALID_INPUT', `Target name "${name}" is not valid: it ${TARGET_NAME_RULE}.`, { field });
  }
}
