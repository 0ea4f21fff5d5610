import { describe, expect, test } from 'bun:test';
import { auditSubject, parseRecordLine, type AuditTag } from '../audit/index.ts';
import { decodeCommand, encodeCommand, toBase64, type TaggedCommand } from './commands.ts';
import { Store } from './store.ts';
import { AuditLog } from './audit-log.ts';
import { tempDir } from '../../../test/helpers/process.ts';
import { NodeFileSystem } from '../../io/node-fs.ts';
import { systemRandom } from '../../io/system.ts';
import { auditSegmentRecords } from '../../limits.ts';
import { joinPieces, pieceContentId, SnapshotStore } from '../../raft/snapshot-store.ts';
import type { SnapshotPiece } from '../../raft/types.ts';
import { webCryptoSha256 } from '../../io/sha256.ts';
import { loadedFrom, piecesIn } from '../../../test/helpers/sealed-files.ts';

const fs = new NodeFileSystem();

const at = '2026-12-01T10:00:00.000Z';
const writer: AuditTag = {
  actor: { kind: 'client', name: 'ci', serial: '4a3f09', role: 'writer' },
  source: '10.0.0.7:51000',
  requestId: 'req-1',
};
const socket: AuditTag = {
  actor: { kind: 'admin-socket', name: 'admin-socket', role: 'admin', uid: 0 },
  source: 'admin-socket',
};
const bytes = (text: string): string => toBase64(new TextEncoder().encode(text));
const raw = (text: string): Uint8Array => new TextEncoder().encode(text);

/** A cluster, then secrets created, updated, rolled back, relabelled and removed, all audited. */
function history(values: { first: string; second: string }): TaggedCommand[] {
  return [
    {
      op: 'cluster-init',
      at,
      clusterId: 'c1',
      caCertPem: 'PEM',
      caKey: bytes('ca-private-key-material'),
      joinTokens: { worker: 'SWMTKN-worker-token-value', manager: 'SWMTKN-manager-token-value' },
      unlockKey: bytes('unlock-key-material-32-bytes....'),
      node: { id: 'n1', role: 'manager', hostname: 'h', addr: '127.0.0.1:4377' },
      audit: socket,
    },
    {
      op: 'secret-create',
      at,
      id: 's1',
      name: 'app_db',
      labels: {},
      data: raw(values.first),
      audit: writer,
    },
    {
      op: 'secret-version-add',
      at,
      id: 's1',
      data: raw(values.second),
      ifVersion: null,
      audit: writer,
    },
    { op: 'secret-rollback', at, id: 's1', to: 1, ifVersion: null, audit: writer },
    { op: 'secret-update', at, id: 's1', expectedIndex: 999, labels: { a: 'b' }, audit: writer },
    {
      op: 'cluster-update',
      at,
      expectedIndex: null,
      joinTokens: { worker: 'SWMTKN-new-worker-token', manager: 'SWMTKN-new-manager-token' },
      unlockKey: bytes('another-unlock-key-material-32b.'),
      audit: socket,
    },
    { op: 'secret-remove', at, ids: ['s1'], audit: writer },
  ];
}

function applyAll(store: Store, commands: readonly TaggedCommand[], from = 1): void {
  commands.forEach((command, i) => store.applyEntry(from + i, encodeCommand(command)));
}

const recordsOf = (store: Store) => [...store.audit.lines()].map((l) => parseRecordLine(l).record);

describe('Store audit records', () => {
  test('a change and its record are applied by the same entry, with the apply outcome', () => {
    const store = new Store();
    const commands = history({ first: 'pw-one', second: 'pw-two' });
    const sizes: number[] = [];
    commands.forEach((command, i) => {
      store.applyEntry(i + 1, encodeCommand(command));
      sizes.push(store.audit.size);
    });
    expect(sizes).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(
      recordsOf(store).map((r) => [
        r.seq,
        r.actor.name,
        r.action,
        r.object?.name,
        r.version,
        r.result,
      ]),
    ).toEqual([
      [1, 'admin-socket', 'cluster-init', undefined, undefined, 'ok'],
      [2, 'ci', 'secret-create', 'app_db', 1, 'ok'],
      [3, 'ci', 'secret-update', 'app_db', 2, 'ok'],
      [4, 'ci', 'secret-rollback', 'app_db', 3, 'ok'],
      // A stale expected index: refused by apply, recorded with its code.
      [5, 'ci', 'secret-label', 'app_db', undefined, 'conflict'],
      [6, 'admin-socket', 'cluster-update', undefined, undefined, 'ok'],
      [7, 'ci', 'secret-rm', 'app_db', undefined, 'ok'],
    ]);
    const first = recordsOf(store)[1]!;
    expect(first).toMatchObject({ at, source: '10.0.0.7:51000', requestId: 'req-1' });
    expect(recordsOf(store)[5]!.detail).toBe('changed: joinTokens, unlockKey');
  });

  test('no record holds a secret value, token, key or a part of one', () => {
    const values = { first: 'Sup3r-S3cret-Value-1', second: 'An0ther-S3cret-Value-2' };
    const store = new Store();
    applyAll(store, history(values));
    const commands = history(values);
    const forbidden = [
      values.first,
      values.second,
      bytes(values.first),
      bytes(values.second),
      'SWMTKN',
      'ca-private-key-material',
      bytes('ca-private-key-material'),
      bytes('unlock-key-material-32-bytes....'),
      bytes('another-unlock-key-material-32b.'),
      'unlock-key-material',
    ];
    expect(commands.length).toBe(store.audit.size);
    for (const line of store.audit.lines())
      for (const value of forbidden)
        expect({ line, has: line.includes(value) }).toEqual({ line, has: false });
  });

  test('a retried command (same request id) lands once and has one record', () => {
    const store = new Store();
    const [init, create] = history({ first: 'a', second: 'b' });
    applyAll(store, [init!, { ...create!, requestId: 'r1' }, { ...create!, requestId: 'r1' }]);
    expect(recordsOf(store).map((r) => r.action)).toEqual(['cluster-init', 'secret-create']);
  });

  test('commands without an audit tag (the cluster loops) and internal ops add no record', () => {
    const store = new Store();
    const [init, create] = history({ first: 'a', second: 'b' });
    const { audit: _dropped, ...untagged } = create!;
    applyAll(store, [
      init!,
      untagged as TaggedCommand,
      { op: 'node-status', at, id: 'n1', status: 'ready', audit: writer },
    ]);
    expect(recordsOf(store).map((r) => r.action)).toEqual(['cluster-init']);
  });

  test('replaying the same entries, or restoring a snapshot and going on, gives the same chain', () => {
    const commands = history({ first: 'a', second: 'b' });
    const one = new Store();
    const two = new Store();
    applyAll(one, commands);
    applyAll(two, commands.slice(0, 3));
    const restored = Store.restore(two.snapshot());
    applyAll(restored, commands.slice(3), 4);
    expect([...restored.audit.lines()]).toEqual([...one.audit.lines()]);
    expect(restored.audit.head).toEqual(one.audit.head);
    expect(one.audit.verify()).toMatchObject({ ok: true, last: 7 });
  });

  test('audit-append entries are numbered and chained after the changes', () => {
    const store = new Store();
    applyAll(store, history({ first: 'a', second: 'b' }).slice(0, 2));
    store.applyEntry(
      3,
      encodeCommand({
        op: 'audit-append',
        at,
        records: [
          {
            at,
            actor: writer.actor,
            source: writer.source,
            action: 'denied',
            detail: 'POST /secrets/create',
            result: 'denied',
          },
          {
            at,
            actor: { kind: 'node', name: 'dispatcher', role: 'manager' },
            source: 'dispatcher',
            action: 'secret-deliver',
            object: { id: 's1', name: 'app_db' },
            version: 1,
            node: 'w1',
            task: 't1',
            result: 'ok',
          },
        ],
      }),
    );
    expect(recordsOf(store).map((r) => [r.seq, r.action, r.node])).toEqual([
      [1, 'cluster-init', undefined],
      [2, 'secret-create', undefined],
      [3, 'denied', undefined],
      [4, 'secret-deliver', 'w1'],
    ]);
    expect(store.audit.verify()).toMatchObject({ ok: true, last: 4 });
  });

  test('the retention setting comes from the cluster and is checked by parseCommand', () => {
    const store = new Store();
    applyAll(store, history({ first: 'a', second: 'b' }).slice(0, 1));
    const result = store.applyEntry(
      2,
      encodeCommand({ op: 'cluster-update', at, expectedIndex: null, auditKept: 5000 }),
    );
    expect(result).toMatchObject({ ok: true });
    expect(store.cluster?.auditKept).toBe(5000);
    const refused = store.applyEntry(
      3,
      encodeCommand({ op: 'cluster-update', at, expectedIndex: null, auditKept: 3 }),
    );
    expect(refused).toMatchObject({ ok: false, code: 'invalid' });
    expect(decodeCommand(encodeCommand({ op: 'dek-rotate', at }))).toEqual({
      op: 'dek-rotate',
      at,
    });
  });

  test('a command whose audit tag is malformed is refused whole: no change, no record', () => {
    const store = new Store();
    applyAll(store, history({ first: 'a', second: 'b' }).slice(0, 1));
    const [, create] = history({ first: 'a', second: 'b' });
    const bad = {
      ...create!,
      audit: { ...writer, actor: { kind: 'root', name: 'x', role: 'admin' } },
    };
    expect(store.applyEntry(2, encodeCommand(bad as TaggedCommand))).toMatchObject({
      ok: false,
      code: 'invalid',
    });
    expect(store.secretByName('app_db')).toBeUndefined();
    expect(store.audit.size).toBe(1);
  });
});

describe('auditSubject()', () => {
  test('names the action and object of a command, and what a role change gives (never a key)', () => {
    const lookups = { secretName: () => undefined, serviceName: () => undefined };
    expect(
      auditSubject(
        { op: 'client-cert-update', at, serials: ['4a3f09'], role: 'writer', scope: ['app_*'] },
        lookups,
      ),
    ).toEqual({
      action: 'ca-update',
      object: { id: '4a3f09' },
      detail: 'role writer, scope app_*',
    });
    expect(
      auditSubject({ op: 'cluster-update', at, expectedIndex: null, unlockKey: 'S0VZ' }, lookups),
    ).toEqual({ action: 'cluster-update', detail: 'changed: unlockKey' });
  });
});

describe('Store snapshots in pieces', () => {
  /** A store whose audit trail holds `records` records after the history (audit-append entries). */
  function storeWith(records: number): { store: Store; next: number } {
    const store = new Store();
    const commands = history({ first: 'pw-one', second: 'pw-two' });
    applyAll(store, commands);
    let index = commands.length + 1;
    for (let left = records; left > 0; left -= 256) {
      const batch = Array.from({ length: Math.min(256, left) }, (_, i) => ({
        at,
        actor: writer.actor,
        source: writer.source,
        action: 'denied',
        detail: `GET /secrets/${index}-${i}`,
        result: 'denied',
      }));
      store.applyEntry(index++, encodeCommand({ op: 'audit-append', at, records: batch }));
    }
    return { store, next: index };
  }
  const sharedIds = (pieces: readonly SnapshotPiece[]): string[] =>
    pieces.flatMap((p) => (p.id === undefined ? [] : [p.id]));
  const denied = (detail: string) =>
    ({
      at,
      actor: writer.actor,
      source: writer.source,
      action: 'denied',
      detail,
      result: 'denied',
    }) as const;

  test('snapshotPieces() are the bytes of snapshot(), each full audit segment a shared piece whose id stays', () => {
    const { store } = storeWith(2 * auditSegmentRecords + 100);
    const pieces = store.snapshotPieces();
    const ids = sharedIds(pieces);
    expect(ids.length).toBe(2);
    expect(joinPieces(pieces)).toEqual(store.snapshot());
    expect(pieces.map((p) => p.bytes().length)).toEqual(pieces.map((p) => p.length));
    for (const piece of pieces)
      if (piece.id !== undefined) expect(pieceContentId(piece.bytes())).toBe(piece.id);
    expect(sharedIds(store.snapshotPieces())).toEqual(ids);
    expect(sharedIds(Store.restore(store.snapshot()).snapshotPieces())).toEqual(ids);
  });

  test("a full segment's piece id is fed line by line as it grows: the SHA-256 of its UTF-8 text, however the lines are escaped", () => {
    const log = new AuditLog(3);
    const details = [
      'GET /secrets/clé',
      'a "quoted" \\ name',
      'tab\there',
      '日本語',
      'plain',
      'x\u0001y',
      'last',
    ];
    for (const detail of details) log.append(denied(detail));
    const pieces = log.snapshotPieces();
    const shared = pieces.filter((p) => p.id !== undefined);
    expect(shared.length).toBe(2);
    for (const piece of shared) {
      const bytes = piece.bytes();
      expect(bytes.length).toBe(piece.length);
      expect(pieceContentId(bytes)).toBe(piece.id!);
    }
    expect(new TextDecoder().decode(joinPieces(pieces))).toBe(log.snapshotJson());
    const restored = AuditLog.restore(log.snapshot(), 3); // ids made the other way: the same
    expect(sharedIds(restored.snapshotPieces())).toEqual(sharedIds(pieces));
  });

  test("restored with the snapshot's spans, full segments take their pieces' ids where the bytes there are that segment's text, and make them otherwise", () => {
    const log = new AuditLog(3);
    for (const detail of ['a', 'b "q"', 'c', 'd', 'é', 'f', 'g']) log.append(denied(detail)); // 2 full, 1 growing
    const pieces = log.snapshotPieces();
    const data = joinPieces(pieces);
    const shared = loadedFrom(
      { index: 1, term: 1, conf: { voters: [], learners: [] } },
      pieces,
    ).shared!;
    expect(shared.length).toBe(2);
    const made = sharedIds(pieces);
    const fake = (i: number): string => String(i).repeat(64); // ids no hash gives: seen only if taken
    const idsAfter = (spans: typeof shared): string[] =>
      sharedIds(AuditLog.restore(log.snapshot(), 3, { data, shared: spans }).snapshotPieces());
    const faked = shared.map((span, i) => ({ ...span, id: fake(i + 1) }));
    expect(idsAfter(faked)).toEqual([fake(1), fake(2)]);
    // A value's piece before them (named, or with a content id) is not taken for a segment.
    const value = { offset: 5, length: 10, id: fake(9), named: false };
    expect(idsAfter([value, { ...value, named: true }, ...faked])).toEqual([fake(1), fake(2)]);
    // Bytes that are not the segment's text there: its id is made, as without spans.
    const moved = faked.map((span) => ({ ...span, offset: span.offset + 1 }));
    expect(idsAfter(moved)).toEqual(made);
    expect(idsAfter([{ ...faked[0]!, length: faked[0]!.length - 1 }, faked[1]!])).toEqual([
      made[0]!,
      fake(2),
    ]);
    expect(idsAfter(faked.map((span) => ({ ...span, named: true })))).toEqual(made);
    expect(idsAfter(faked.slice(1))).toEqual(made); // fewer pieces than full segments
    expect(idsAfter([])).toEqual(made);
  });

  test("the growing segment's piece is the trail as of the call, though its bytes are made later and lines were appended since", () => {
    const log = new AuditLog(4);
    for (const detail of ['a', 'é', 'c', 'd', 'e', 'ü']) log.append(denied(detail));
    const json = log.snapshotJson();
    const pieces = log.snapshotPieces();
    for (const detail of ['g', 'h', 'i']) log.append(denied(detail)); // fills the growing segment, starts another
    expect(new TextDecoder().decode(joinPieces(pieces))).toBe(json);
  });

  test('a snapshot store saves a store with full audit segments as one piece per segment, once, and loads exactly Store.snapshot()', async () => {
    using dir = tempDir('secretd-store-snap-');
    const { store, next } = storeWith(2 * auditSegmentRecords + 10);
    const names = async (): Promise<string[]> => (await fs.list(dir.path)).sort();
    const snapshots = await SnapshotStore.open(dir.path, {
      dek: systemRandom(32),
      keyId: 1,
      random: systemRandom,
      fs,
      sha256: webCryptoSha256,
    });
    const conf = { voters: [], learners: [] };
    await snapshots.save({
      meta: { index: next - 1, term: 1, conf },
      pieces: store.snapshotPieces(),
    });
    const first = piecesIn(dir.path);
    expect(first.length).toBe(2);
    expect((await names()).filter((n) => n.endsWith('.pack')).length).toBe(1);
    expect((await snapshots.loadLatest())?.data).toEqual(store.snapshot());

    store.applyEntry(
      next,
      encodeCommand({ op: 'secret-remove', at, ids: ['none'], audit: writer }),
    );
    await snapshots.save({ meta: { index: next, term: 1, conf }, pieces: store.snapshotPieces() });
    expect(piecesIn(dir.path)).toEqual(first);
    expect((await names()).filter((n) => n.endsWith('.pack')).length).toBe(1);
    const loaded = await snapshots.loadLatest();
    expect(loaded?.data).toEqual(store.snapshot());
    expect([...Store.restore(loaded!.data).audit.lines()]).toEqual([...store.audit.lines()]);
    // Restored with where its pieces lay, the store names its full segments as it did.
    expect(loaded!.shared?.length).toBe(2);
    const restored = Store.restore(loaded!.data, loaded!.shared);
    expect([...restored.audit.lines()]).toEqual([...store.audit.lines()]);
    expect(sharedIds(restored.snapshotPieces())).toEqual(sharedIds(store.snapshotPieces()));
    expect(joinPieces(restored.snapshotPieces())).toEqual(store.snapshot());
  });
});

describe('AuditLog.snapshotPieces, the growing segment text made as lines are appended', () => {
  const entry = (i: number) => ({
    at: '2026-12-06T00:00:00.000Z',
    actor: 'client:"q"\\b',
    source: '127.0.0.1',
    action: 'denied',
    detail: `GET /secrets/${i} \u00e9\u2028"`,
    result: 'denied',
  });
  const text = (pieces: readonly SnapshotPiece[]): string =>
    new TextDecoder().decode(joinPieces(pieces));

  test('is JSON.stringify(snapshot()) before, at and past segment boundaries, and after a restore', () => {
    const log = new AuditLog(3);
    for (let i = 1; i <= 8; i++) {
      log.append(entry(i) as never);
      expect(text(log.snapshotPieces())).toBe(JSON.stringify(log.snapshot()));
      expect(log.snapshotJson()).toBe(JSON.stringify(log.snapshot()));
    }
    for (const cut of [6, 7]) {
      const restored = AuditLog.restore(
        { anchor: log.anchor, lines: [...log.lines()].slice(0, cut) },
        3,
      );
      for (let i = 0; i < 4; i++) {
        restored.append(entry(100 + i) as never);
        expect(text(restored.snapshotPieces())).toBe(JSON.stringify(restored.snapshot()));
      }
    }
  });
});
