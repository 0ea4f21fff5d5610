/** One rule for turning committed entries into store state, live and from disk. */
import { describe, expect, test } from 'bun:test';
import type { Entry } from '../../raft/types.ts';
import { encodeCommand, Store } from '../store/index.ts';
import { replayCommitted } from './_replay.ts';

const at = '2026-12-01T00:00:00.000Z';
const secret = (index: number, name: string): Entry => ({
  term: 2,
  index,
  type: 'normal',
  data: encodeCommand({
    op: 'secret-create',
    at,
    id: `id-${name}`,
    name,
    labels: {},
    data: new TextEncoder().encode(name),
  }),
});

describe('replayCommitted()', () => {
  test('applies commands, passes no-ops and membership changes, and stops at the commit index', () => {
    const store = new Store();
    const entries: Entry[] = [
      { term: 2, index: 1, type: 'normal', data: new Uint8Array(0) },
      secret(2, 'one'),
      { term: 2, index: 3, type: 'conf', data: new Uint8Array([1, 2, 3]) },
      secret(4, 'two'),
      secret(5, 'uncommitted'),
    ];
    const seen: Array<[number, unknown]> = [];
    replayCommitted(store, entries, 4, (entry, result) => seen.push([entry.index, result]));
    expect(seen).toEqual([
      [1, null],
      [2, { ok: true, id: 'id-one' }],
      [3, null],
      [4, { ok: true, id: 'id-two' }],
    ]);
    expect({
      applied: store.appliedIndex,
      secrets: [...store.secrets()].map((s) => s.name),
    }).toEqual({ applied: 4, secrets: ['one', 'two'] });
  });

  test('passes over entries the store already holds (a snapshot covers them)', () => {
    const store = new Store();
    replayCommitted(store, [secret(1, 'one')], 1);
    const seen: number[] = [];
    replayCommitted(store, [secret(1, 'one'), secret(2, 'two')], 2, (entry) =>
      seen.push(entry.index),
    );
    expect({ seen, applied: store.appliedIndex }).toEqual({ seen: [2], applied: 2 });
  });

  test('an entry that is no command fails as a write, the same live and from disk, and the replay goes on', () => {
    const store = new Store();
    const results: unknown[] = [];
    replayCommitted(
      store,
      [{ term: 1, index: 1, type: 'normal', data: new Uint8Array([0xff, 0x00]) }, secret(2, 'two')],
      2,
      (_entry, result) => results.push(result),
    );
    expect({ results, applied: store.appliedIndex }).toEqual({
      results: [
        { ok: false, code: 'corrupt', message: 'Log entry is not a valid command' },
        { ok: true, id: 'id-two' },
      ],
      applied: 2,
    });
  });
});
