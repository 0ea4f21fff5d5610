/** The Raft transport against a fake peer client, on a hand-driven clock (the Timers port). */
import { describe, expect, test } from 'bun:test';
import { EventEmitter } from 'node:events';
import { ManualTimers } from '../../../test/helpers/manual-timers.ts';
import type { MemberId, Message } from '../../raft/types.ts';
import type { PeerClient } from '../peers/index.ts';
import { FrameReader } from './frames.ts';
import { raftStreamPath, RaftTransport, withoutStaleAppends } from './transport.ts';
import { decodeMessages } from './wire.ts';

const a = 'a' as MemberId;
const b = 'b' as MemberId;
const heartbeat: Message = { type: 'heartbeat', from: a, to: b, term: 1, commit: 0 };

class FakeStream extends EventEmitter {
  closed = false;
  ended = false;
  readonly frames: Uint8Array[] = [];
  write(bytes: Uint8Array): boolean {
    this.frames.push(bytes);
    return true;
  }
  end(): void {
    this.ended = true;
  }
  close(): void {
    this.closed = true;
  }
}

/**
 * A client whose streams the test drives; `refuse` makes openStream throw, as for a peer that is
 * down; `retire` retires a stream's connection, as a renewal or the server's GOAWAY does.
 */
function fakeClient() {
  const opened: Array<{ addr: string; path: string; stream: FakeStream }> = [];
  const retired = new Set<FakeStream>();
  let refuse = false;
  const client = {
    openStream(addr: string, path: string) {
      if (refuse) throw new Error('connect ECONNREFUSED');
      const stream = new FakeStream();
      opened.push({ addr, path, stream });
      return stream;
    },
    retired: (stream: FakeStream) => retired.has(stream),
    reset() {},
  } as unknown as PeerClient;
  return {
    client,
    opened,
    refuse: (value: boolean) => void (refuse = value),
    retire: (stream: FakeStream) => void retired.add(stream),
  };
}

/** A transport to one peer at 10.0.0.2:4377 through `peers`, on `timers`. */
function transportTo(peers: ReturnType<typeof fakeClient>, timers: ManualTimers): RaftTransport {
  return new RaftTransport({
    client: peers.client,
    resolve: () => '10.0.0.2:4377',
    timeoutMs: 5000,
    timers,
  });
}

/** Lets the transport's queued flush run (it sends once per turn of the event loop). */
const flushed = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('RaftTransport', () => {
  test('reachable() holds only after the peer acknowledged a frame, and for withinMs on the Timers clock', async () => {
    const timers = new ManualTimers(); // reads 0: a peer never heard from must not look recent
    const peers = fakeClient();
    const transport = transportTo(peers, timers);
    transport.send([heartbeat]);
    await flushed();
    expect(
      peers.opened.map(({ addr, path, stream }) => ({ addr, path, frames: stream.frames.length })),
    ).toEqual([{ addr: '10.0.0.2:4377', path: raftStreamPath, frames: 1 }]);
    expect(transport.reachable(b, 1000)).toBe(false);
    peers.opened[0]!.stream.emit('data', new Uint8Array([1]));
    expect(transport.reachable(b, 1000)).toBe(true);
    timers.advance(999);
    expect(transport.reachable(b, 1000)).toBe(true);
    timers.advance(1);
    expect(transport.reachable(b, 1000)).toBe(false);
    transport.close();
  });

  test('a peer that cannot be reached is tried again after the back-off, on the Timers clock', async () => {
    const timers = new ManualTimers();
    const peers = fakeClient();
    peers.refuse(true);
    const transport = transportTo(peers, timers);
    transport.send([heartbeat]);
    await flushed();
    expect({ opened: peers.opened.length, retries: timers.pendingAfters() }).toEqual({
      opened: 0,
      retries: [50],
    });
    peers.refuse(false);
    timers.advance(49);
    expect(peers.opened.length).toBe(0);
    timers.advance(1);
    expect(peers.opened.map(({ stream }) => stream.frames.length)).toEqual([1]);
    transport.close();
  });

  test("a stream whose connection was retired (a renewal, the peer's GOAWAY) is ended, and the next frame goes on a new one at once", async () => {
    const timers = new ManualTimers();
    const peers = fakeClient();
    const transport = transportTo(peers, timers);
    transport.send([heartbeat]);
    await flushed();
    const first = peers.opened[0]!.stream;
    peers.retire(first);
    transport.send([heartbeat]);
    await flushed();
    expect(
      peers.opened.map(({ stream }) => ({
        frames: stream.frames.length,
        ended: stream.ended,
        closed: stream.closed,
      })),
    ).toEqual([
      { frames: 1, ended: true, closed: false },
      { frames: 1, ended: false, closed: false },
    ]);
    // No back-off, and the old stream's end is not a failure of the peer.
    expect(timers.pendingAfters()).toEqual([]);
    first.emit('close');
    transport.send([heartbeat]);
    await flushed();
    expect(peers.opened.map(({ stream }) => stream.frames.length)).toEqual([1, 2]);
    transport.close();
  });

  test('an append that only carries a commit index waits a turn, and gives way to a later append to the same peer', async () => {
    const peers = fakeClient();
    const transport = transportTo(peers, new ManualTimers());
    const sent = (): Message[][] =>
      peers.opened.flatMap(({ stream }) =>
        stream.frames.flatMap((bytes) => new FrameReader(1 << 20).push(bytes).map(decodeMessages)),
      );
    transport.send([append(2, 5, 0)], { later: true });
    await Promise.resolve();
    expect(sent()).toEqual([]); // not at the end of this turn: at the next
    await flushed();
    expect(sent()).toEqual([[append(2, 5, 0)]]);
    transport.send([append(2, 6, 0)], { later: true });
    transport.send([append(2, 6, 2)]);
    await flushed();
    expect(sent()).toEqual([[append(2, 5, 0)], [append(2, 6, 2)]]);
    transport.close();
  });

  test('withoutStaleAppends drops an empty append only before a later append in the same term', () => {
    const hb: Message = { ...heartbeat, term: 2 };
    expect(withoutStaleAppends([append(2, 5, 0), hb, append(2, 5, 1)])).toEqual([
      hb,
      append(2, 5, 1),
    ]);
    expect(withoutStaleAppends([append(2, 5, 0), append(2, 6, 0)])).toEqual([append(2, 6, 0)]);
    const kept = [append(2, 5, 1), append(2, 6, 0)];
    expect(withoutStaleAppends(kept)).toBe(kept);
    const terms = [append(1, 5, 0), append(2, 5, 1)];
    expect(withoutStaleAppends(terms)).toEqual(terms);
    expect(withoutStaleAppends([hb])).toEqual([hb]);
  });
});

/** An append in `term` after `prevIndex` with `count` entries, committing up to prevIndex. */
function append(term: number, prevIndex: number, count: number): Message {
  return {
    type: 'append',
    from: a,
    to: b,
    term,
    prevIndex,
    prevTerm: term,
    commit: prevIndex,
    entries: Array.from({ length: count }, (_, i) => ({
      term,
      index: prevIndex + 1 + i,
      type: 'normal' as const,
      data: new Uint8Array([i]),
    })),
  };
}
