import { describe, expect, test } from 'bun:test';
import { SecretdError } from '../../errors.ts';
import type { MemberId, Message } from '../../raft/types.ts';
import { decodeMessages, encodeMessages } from './wire.ts';

const a = 'a' as MemberId;
const b = 'b' as MemberId;

describe('Raft messages on the wire', () => {
  test('a batch of messages with entry and snapshot bytes round-trips exactly', () => {
    const messages: Message[] = [
      {
        type: 'append',
        from: a,
        to: b,
        term: 3,
        prevIndex: 4,
        prevTerm: 2,
        commit: 4,
        entries: [
          { term: 3, index: 5, type: 'normal', data: new Uint8Array([1, 2, 3]) },
          { term: 3, index: 6, type: 'conf', data: new Uint8Array(0) },
        ],
      },
      { type: 'heartbeat', from: a, to: b, term: 3, commit: 6, context: 'r1' },
      {
        type: 'snapshot',
        from: a,
        to: b,
        term: 3,
        snapshot: {
          meta: { index: 9, term: 3, conf: { voters: [a, b], learners: [] } },
          data: new Uint8Array(70_000).fill(9),
        },
      },
    ];
    expect(decodeMessages(encodeMessages(messages))).toEqual(messages);
  });

  test('a malformed batch is refused with a clear error', () => {
    const good = encodeMessages([{ type: 'heartbeat', from: a, to: b, term: 1, commit: 0 }]);
    const errorOf = (bytes: Uint8Array): string => {
      try {
        decodeMessages(bytes);
      } catch (error) {
        expect(error).toBeInstanceOf(SecretdError);
        return (error as Error).message;
      }
      return 'accepted';
    };
    expect(errorOf(new Uint8Array([0, 0]))).toContain('too short');
    expect(errorOf(good.subarray(0, good.length - 3))).toContain('header runs past the end');
    expect(errorOf(new Uint8Array([...good, 0, 0, 0, 9, 1]))).toContain('blob runs past the end');
    const notJson = new Uint8Array([0, 0, 0, 2, 0x7b, 0x7b]);
    expect(errorOf(notJson)).toContain('not valid JSON');
    const notList = new TextEncoder().encode('{"type":"x"}');
    expect(errorOf(new Uint8Array([0, 0, 0, notList.length, ...notList]))).toContain(
      'expected a list of messages',
    );
  });
});
