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

  test('the bytes are those earlier versions sent and read: header JSON, then each blob', () => {
    const message: Message = {
      type: 'append',
      from: a,
      to: b,
      term: 2,
      prevIndex: 0,
      prevTerm: 0,
      commit: 0,
      entries: [{ term: 2, index: 1, type: 'normal', data: new Uint8Array([7, 8]) }],
    };
    const header = new TextEncoder().encode(
      '[{"type":"append","from":"a","to":"b","term":2,"prevIndex":0,"prevTerm":0,"commit":0,' +
        '"entries":[{"term":2,"index":1,"type":"normal","data":"\\u0000blob:0"}]}]',
    );
    const expected = new Uint8Array([0, 0, 0, header.length, ...header, 0, 0, 0, 2, 7, 8]);
    expect(encodeMessages([message])).toEqual(expected);
    expect(decodeMessages(expected)).toEqual([message]);
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
    const batch = (header: string, ...blobs: number[][]): Uint8Array => {
      const bytes = new TextEncoder().encode(header);
      const tail = blobs.flatMap((blob) => [0, 0, 0, blob.length, ...blob]);
      return new Uint8Array([0, 0, 0, bytes.length, ...bytes, ...tail]);
    };
    const append = (data: string): string =>
      `[{"type":"append","from":"a","to":"b","term":1,"prevIndex":0,"prevTerm":0,"commit":0,"entries":[{"term":1,"index":1,"type":"normal","data":${data}}]}]`;
    expect(errorOf(batch(append('"\\u0000blob:1"'), [1]))).toContain('unknown blob');
    expect(errorOf(batch(append('"AQ=="')))).toContain('bytes expected');
    expect(errorOf(batch(append('[1]')))).toContain('bytes expected');
    expect(errorOf(batch('[{"type":"append","entries":3}]'))).toContain('without entries');
    expect(errorOf(batch('[{"type":"snapshot"}]'))).toContain('snapshot without data');
  });
});
