/**
 * Membership changes: their byte encoding (the data of a 'conf' log entry) and their effect on a
 * ConfState. Changes are single-server (one member at a time, Ongaro's thesis §4.1); joint
 * consensus is not supported.
 *
 * Encoding, version 1:  [version u8 = 1] [kind u8] [id length u8] [id UTF-8 bytes]
 * kind: 1 add-learner, 2 promote, 3 remove. Every member decodes the same bytes the same way, so
 * the version byte lets a later release add kinds without misreading old entries.
 */
import { SecretdError, assertNever } from '../errors.ts';
import type { ConfChange, ConfState, MemberId } from './types.ts';

const encodingVersion = 1;
const idBytesMax = 255;

const kindCodes = { 'add-learner': 1, promote: 2, remove: 3 } as const satisfies Record<
  ConfChange['kind'],
  number
>;

function kindFromCode(code: number): ConfChange['kind'] | null {
  switch (code) {
    case 1:
      return 'add-learner';
    case 2:
      return 'promote';
    case 3:
      return 'remove';
    default:
      return null;
  }
}

export function encodeConfChange(change: ConfChange): Uint8Array {
  const id = new TextEncoder().encode(change.id);
  if (id.length === 0 || id.length > idBytesMax) {
    throw new SecretdError(
      'invalid',
      `Cannot encode membership change: member id '${change.id}' must be 1 to ${idBytesMax} bytes`,
    );
  }
  const bytes = new Uint8Array(3 + id.length);
  bytes[0] = encodingVersion;
  bytes[1] = kindCodes[change.kind];
  bytes[2] = id.length;
  bytes.set(id, 3);
  return bytes;
}

export function decodeConfChange(bytes: Uint8Array): ConfChange {
  const corrupt = (why: string): SecretdError =>
    new SecretdError('corrupt', `Cannot decode membership change of ${bytes.length} bytes: ${why}`);
  if (bytes.length < 4) throw corrupt('too short');
  if (bytes[0] !== encodingVersion) throw corrupt(`unknown version ${bytes[0]}`);
  const kind = kindFromCode(bytes[1] ?? 0);
  if (kind === null) throw corrupt(`unknown kind ${bytes[1]}`);
  if (bytes[2] !== bytes.length - 3) throw corrupt(`id length ${bytes[2]} does not match`);
  let id: string;
  try {
    id = new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(3));
  } catch (cause) {
    throw new SecretdError('corrupt', 'Cannot decode membership change: member id is not UTF-8', {
      cause,
    });
  }
  return { kind, id: id as MemberId };
}

/**
 * Why `change` cannot be applied to `conf`, or null when it can. The leader refuses such a
 * proposal; a member applying one from the log (it can only get there through a bug or a race
 * the leader did not see) skips it, and since every member skips it the configurations agree.
 */
export function confChangeProblem(conf: ConfState, change: ConfChange): string | null {
  const isVoter = conf.voters.includes(change.id);
  const isLearner = conf.learners.includes(change.id);
  switch (change.kind) {
    case 'add-learner':
      if (isVoter || isLearner) {
        return `Cannot add learner ${change.id}: it is already a ${isVoter ? 'voter' : 'learner'}`;
      }
      return null;
    case 'promote':
      if (!isLearner) return `Cannot promote ${change.id}: it is not a learner`;
      return null;
    case 'remove':
      if (!isVoter && !isLearner) return `Cannot remove ${change.id}: it is not a member`;
      if (isVoter && conf.voters.length === 1)
        return `Cannot remove ${change.id}: it is the last voter`;
      return null;
    default:
      return assertNever(change);
  }
}

/** The configuration after `change`; the caller has checked confChangeProblem() is null. */
export function applyConfChange(conf: ConfState, change: ConfChange): ConfState {
  const without = (ids: readonly MemberId[]): MemberId[] => ids.filter((id) => id !== change.id);
  switch (change.kind) {
    case 'add-learner':
      return freezeConf({ voters: conf.voters, learners: [...conf.learners, change.id] });
    case 'promote':
      return freezeConf({ voters: [...conf.voters, change.id], learners: without(conf.learners) });
    case 'remove':
      return freezeConf({ voters: without(conf.voters), learners: without(conf.learners) });
    default:
      return assertNever(change);
  }
}

export function freezeConf(conf: ConfState): ConfState {
  return Object.freeze({
    voters: Object.freeze([...conf.voters]),
    learners: Object.freeze([...conf.learners]),
  });
}

export function sameConf(a: ConfState, b: ConfState): boolean {
  const same = (x: readonly MemberId[], y: readonly MemberId[]): boolean => {
    const sortedY = [...y].sort();
    return x.length === y.length && [...x].sort().every((id, i) => id === sortedY[i]);
  };
  return same(a.voters, b.voters) && same(a.learners, b.learners);
}
