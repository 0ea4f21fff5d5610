/**
 * The sequential specifications the simulator's client histories are checked against, one object
 * per key (see linearizability.ts):
 *
 *   register  write(v) → 'ok'; read() → the last value written, or null before any write.
 *   set       per name, membership: create() → 'ok' if absent (then present) else 'conflict';
 *             remove() → 'ok' if present (then absent) else 'not_found'; exists() → 'present' | 'absent'.
 */
import type { Model, Operation } from './linearizability.ts';

export type SimInput =
  | { readonly f: 'write'; readonly value: string }
  | { readonly f: 'read' }
  | { readonly f: 'create' }
  | { readonly f: 'remove' }
  | { readonly f: 'exists' };

/** 'ok' | 'conflict' | 'not_found' | 'present' | 'absent' | a value read | null (read of an unwritten register). */
export type SimOutput = string | null;

export interface SimOperation extends Operation<SimInput, SimOutput> {
  readonly key: string;
  readonly client: number;
}

export const registerModel: Model<string | null, SimInput, SimOutput> = {
  init: null,
  step(state, input, output) {
    switch (input.f) {
      case 'write':
        return output === undefined || output === 'ok' ? input.value : undefined;
      case 'read':
        return output === state ? state : undefined;
      default:
        return undefined;
    }
  },
  key: (state) => (state === null ? '\u0000' : state),
};

export const setModel: Model<boolean, SimInput, SimOutput> = {
  init: false,
  step(present, input, output) {
    switch (input.f) {
      case 'create':
        if (output === undefined) return true;
        return output === (present ? 'conflict' : 'ok') ? true : undefined;
      case 'remove':
        if (output === undefined) return false;
        return output === (present ? 'ok' : 'not_found') ? false : undefined;
      case 'exists':
        return output === (present ? 'present' : 'absent') ? present : undefined;
      default:
        return undefined;
    }
  },
  key: (present) => (present ? '1' : '0'),
};

/** Keys are 'register:<name>' or 'set:<name>'. */
export function modelFor(key: string): Model<unknown, SimInput, SimOutput> {
  if (key.startsWith('register:')) return registerModel;
  if (key.startsWith('set:')) return setModel;
  throw new Error(`No model for key ${key}`);
}

/**
 * Leaves out each register write of unknown outcome whose value no read returned. That changes no
 * verdict (values are unique): if the rest linearizes, so does the whole with that write left out,
 * which an unknown outcome allows; and in any order of the whole, nothing reads the write's value,
 * so removing it leaves an order of the rest. It keeps the search small when many writes to one
 * key time out.
 */
export function withoutUnobservedWrites<Op extends SimOperation>(ops: readonly Op[]): Op[] {
  const read = new Set(
    ops.filter((op) => op.input.f === 'read').map((op) => `${op.key}\u0000${op.output}`),
  );
  return ops.filter(
    (op) =>
      !(
        op.input.f === 'write' &&
        op.output === undefined &&
        !read.has(`${op.key}\u0000${op.input.value}`)
      ),
  );
}
