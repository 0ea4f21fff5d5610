import { describe, expect, test } from 'bun:test';
import { checkByKey, checkLinearizable } from './linearizability.ts';
import {
  modelFor,
  registerModel,
  setModel,
  type SimInput,
  type SimOperation,
  type SimOutput,
  withoutUnobservedWrites,
} from './models.ts';
import { Prng } from './prng.ts';

const unknown = undefined;
let nextClient = 0;
function op(
  key: string,
  input: SimInput,
  output: SimOutput | undefined,
  call: number,
  ret = Infinity,
): SimOperation {
  return { key, client: nextClient++, input, output, call, ret };
}
const write = (
  value: string,
  output: SimOutput | undefined,
  call: number,
  ret?: number,
): SimOperation => op('register:x', { f: 'write', value }, output, call, ret);
const read = (value: string | null, call: number, ret: number): SimOperation =>
  op('register:x', { f: 'read' }, value, call, ret);
const create = (output: SimOutput | undefined, call: number, ret?: number): SimOperation =>
  op('set:s', { f: 'create' }, output, call, ret);
const remove = (output: SimOutput | undefined, call: number, ret?: number): SimOperation =>
  op('set:s', { f: 'remove' }, output, call, ret);
const exists = (present: boolean, call: number, ret: number): SimOperation =>
  op('set:s', { f: 'exists' }, present ? 'present' : 'absent', call, ret);

const registerOk = (ops: SimOperation[]): boolean => checkLinearizable(registerModel, ops).ok;
const setOk = (ops: SimOperation[]): boolean => checkLinearizable(setModel, ops).ok;

describe('checkLinearizable() on a register', () => {
  test('accepts a sequential history that reads what was last written', () => {
    expect(
      registerOk([
        read(null, 0, 1),
        write('a', 'ok', 2, 3),
        read('a', 4, 5),
        write('b', 'ok', 6, 7),
        read('b', 8, 9),
      ]),
    ).toBe(true);
  });

  test('rejects a stale read after a later write completed', () => {
    expect(registerOk([write('a', 'ok', 0, 1), write('b', 'ok', 2, 3), read('a', 4, 5)])).toBe(
      false,
    );
  });

  test('rejects a read of null after an acknowledged write (a lost write)', () => {
    expect(registerOk([write('a', 'ok', 0, 1), read(null, 2, 3)])).toBe(false);
  });

  test('rejects a read of a value nobody wrote', () => {
    expect(registerOk([write('a', 'ok', 0, 1), read('z', 2, 3)])).toBe(false);
  });

  test('accepts either value for a read concurrent with a write', () => {
    expect(registerOk([write('a', 'ok', 0, 1), write('b', 'ok', 2, 10), read('a', 3, 4)])).toBe(
      true,
    );
    expect(registerOk([write('a', 'ok', 0, 1), write('b', 'ok', 2, 10), read('b', 3, 4)])).toBe(
      true,
    );
  });

  test('treats intervals as closed: a read returning when a write is called may see it', () => {
    expect(registerOk([write('a', 'ok', 5, 9), read('a', 1, 5)])).toBe(true);
  });

  test('rejects reads that flip back between two concurrent writes', () => {
    expect(
      registerOk([
        write('a', 'ok', 0, 10),
        write('b', 'ok', 0, 10),
        read('a', 1, 2),
        read('b', 3, 4),
        read('a', 5, 6),
      ]),
    ).toBe(false);
  });

  test('lets a write of unknown outcome take effect long after its call', () => {
    expect(
      registerOk([
        write('a', unknown, 0),
        read(null, 1, 2),
        write('b', 'ok', 3, 4),
        read('b', 5, 6),
        read('a', 7, 8),
      ]),
    ).toBe(true);
  });

  test('lets a write of unknown outcome never take effect', () => {
    expect(
      registerOk([
        write('a', unknown, 0),
        read(null, 5, 6),
        write('b', 'ok', 7, 8),
        read('b', 9, 10),
      ]),
    ).toBe(true);
  });

  test('never lets a write of unknown outcome take effect before its call', () => {
    expect(registerOk([read('a', 0, 1), write('a', unknown, 2)])).toBe(false);
  });

  test('rejects a value that disappears although the only writer of another value never ran', () => {
    expect(registerOk([write('a', unknown, 0), read('a', 1, 2), read(null, 3, 4)])).toBe(false);
  });

  test('reports the longest order it found and the operations stuck after it', () => {
    const history = [write('a', 'ok', 0, 1), write('b', 'ok', 2, 3), read('a', 4, 5)];
    const verdict = checkLinearizable(registerModel, history);
    expect(verdict.ok).toBe(false);
    if (verdict.ok) return;
    expect(verdict.reason).toBe('not-linearizable');
    expect(verdict.longest).toEqual([history[0]!, history[1]!]);
    expect(verdict.stuck).toEqual([history[2]!]);
  });

  test('reports budget, not success, when the step budget runs out', () => {
    const history = [
      write('a', 'ok', 0, 10),
      write('b', 'ok', 0, 10),
      read('a', 1, 2),
      read('b', 3, 4),
      read('a', 5, 6),
    ];
    const verdict = checkLinearizable(registerModel, history, { stepsMax: 3 });
    expect(verdict.ok ? 'ok' : verdict.reason).toBe('budget');
  });
});

describe('checkLinearizable() on set membership', () => {
  test('accepts create, conflicting create, remove, missing remove', () => {
    expect(
      setOk([
        create('ok', 0, 1),
        create('conflict', 2, 3),
        exists(true, 4, 5),
        remove('ok', 6, 7),
        remove('not_found', 8, 9),
        exists(false, 10, 11),
      ]),
    ).toBe(true);
  });

  test('rejects two successful creates with no remove between them', () => {
    expect(setOk([create('ok', 0, 1), create('ok', 2, 3)])).toBe(false);
  });

  test('accepts two concurrent creates when exactly one succeeds', () => {
    expect(setOk([create('conflict', 0, 5), create('ok', 1, 4)])).toBe(true);
  });

  test('rejects a removed name that is still present', () => {
    expect(setOk([create('ok', 0, 1), remove('ok', 2, 3), exists(true, 4, 5)])).toBe(false);
  });

  test('lets a create of unknown outcome be omitted', () => {
    expect(setOk([create(unknown, 0), create('ok', 5, 6)])).toBe(true);
  });

  test('rejects a create of unknown outcome that must have both happened and not happened', () => {
    expect(setOk([create(unknown, 0), exists(true, 2, 3), create('ok', 5, 6)])).toBe(false);
  });

  test('accepts a remove of unknown outcome taking effect after a later read', () => {
    expect(
      setOk([create('ok', 0, 1), remove(unknown, 2), exists(true, 3, 4), exists(false, 5, 6)]),
    ).toBe(true);
  });
});

describe('checkByKey()', () => {
  test('checks keys independently and names the one that fails', () => {
    const good = [write('a', 'ok', 0, 1), read('a', 2, 3)];
    const bad = [
      op('register:y', { f: 'write', value: 'a' }, 'ok', 0, 1),
      op('register:y', { f: 'read' }, null, 2, 3),
    ];
    expect(checkByKey([...good, create('ok', 0, 1)], modelFor).failed).toBeNull();
    expect(checkByKey([...good, ...bad], modelFor).failed?.key).toBe('register:y');
  });
});

describe('withoutUnobservedWrites()', () => {
  test('drops only register writes of unknown outcome whose value nobody read', () => {
    const seen = write('a', unknown, 0);
    const unseen = write('b', unknown, 1);
    const acknowledged = write('c', 'ok', 2, 3);
    const reading = read('a', 4, 5);
    const creating = create(unknown, 6);
    expect(withoutUnobservedWrites([seen, unseen, acknowledged, reading, creating])).toEqual([
      seen,
      acknowledged,
      reading,
      creating,
    ]);
  });

  test('keeps a key with many timed-out writes cheap to check, with the same verdict', () => {
    // Forty writes that timed out, all concurrent with everything after them, and reads of two of them.
    const timedOut = Array.from({ length: 40 }, (_, i) => write(`t${i}`, unknown, i));
    const ok = [...timedOut, write('a', 'ok', 50, 51), read('a', 52, 53), read('t7', 54, 55)];
    const bad = [...ok, read('a', 56, 57)];
    const okVerdict = checkLinearizable(registerModel, withoutUnobservedWrites(ok));
    expect(okVerdict).toMatchObject({ ok: true });
    expect(okVerdict.steps).toBeLessThan(100);
    expect(checkLinearizable(registerModel, withoutUnobservedWrites(bad)).ok).toBe(false);
  });
});

describe('checkLinearizable() on random histories', () => {
  /** A sequential run of register operations, each given a point in time, its interval widened around it. */
  function randomHistory(prng: Prng, length: number): SimOperation[] {
    let value: string | null = null;
    const ops: SimOperation[] = [];
    for (let i = 0; i < length; i++) {
      const point = i * 10 + 5;
      const call = point - prng.int(30);
      const ret = point + prng.int(30);
      if (prng.chance(0.5)) {
        value = `v${i}`;
        const outcome = prng.chance(0.15) ? unknown : 'ok';
        ops.push(op('register:x', { f: 'write', value }, outcome, call, ret));
      } else {
        ops.push(op('register:x', { f: 'read' }, value, call, ret));
      }
    }
    return ops;
  }

  test('accepts every history widened from a sequential run', () => {
    const prng = new Prng(42);
    for (let round = 0; round < 200; round++)
      expect(registerOk(randomHistory(prng, 40))).toBe(true);
  });

  test('rejects every history whose one read returns a value never written', () => {
    const prng = new Prng(7);
    for (let round = 0; round < 200; round++) {
      const ops = randomHistory(prng, 40);
      const reads = ops.map((o, i) => [o, i] as const).filter(([o]) => o.input.f === 'read');
      if (reads.length === 0) continue;
      const [victim, at] = prng.pick(reads);
      ops[at] = { ...victim, output: 'never-written' };
      expect(registerOk(ops)).toBe(false);
    }
  });

  test('rejects most histories whose one read was made stale (an older value)', () => {
    const prng = new Prng(11);
    let mutated = 0;
    let rejected = 0;
    for (let round = 0; round < 300; round++) {
      const ops = randomHistory(prng, 40);
      const values = ops.flatMap((o) => (o.input.f === 'write' ? [o.input.value] : []));
      const reads = ops
        .map((o, i) => [o, i] as const)
        .filter(([o]) => o.input.f === 'read' && values.indexOf(o.output as string) >= 3);
      if (reads.length === 0) continue;
      const [victim, at] = prng.pick(reads);
      ops[at] = { ...victim, output: values[values.indexOf(victim.output as string) - 3]! };
      mutated++;
      if (!registerOk(ops)) rejected++;
    }
    expect(mutated).toBeGreaterThan(100);
    expect(rejected / mutated).toBeGreaterThan(0.5); // 0.62 with this seed: widened intervals let some stale reads through legitimately
  });
});

/**
 * An independent oracle for single-register histories with unique written values and every
 * outcome known: Gibbons & Korach, "Testing shared memories" (1997). Each write and the reads of
 * its value form a cluster whose zone runs from its earliest return to its latest call; the history
 * is linearizable iff no read returns before its write is called, no two forward zones (earliest
 * return before latest call) overlap, and no backward zone lies inside a forward one.
 */
function zonesAgree(ops: readonly SimOperation[]): boolean {
  const writes = new Map(
    ops.flatMap((op) => (op.input.f === 'write' ? [[op.input.value, op] as const] : [])),
  );
  const clusters = new Map<string | null, { minRet: number; maxCall: number }>([
    [null, { minRet: -Infinity, maxCall: -Infinity }],
  ]);
  for (const op of ops) {
    const value = op.input.f === 'write' ? op.input.value : (op.output as string | null);
    if (op.input.f === 'read' && value !== null) {
      const write = writes.get(value);
      if (write === undefined || op.ret < write.call) return false;
    }
    const zone = clusters.get(value) ?? { minRet: Infinity, maxCall: -Infinity };
    clusters.set(value, {
      minRet: Math.min(zone.minRet, op.ret),
      maxCall: Math.max(zone.maxCall, op.call),
    });
  }
  const zones = [...clusters.values()];
  const forward = zones.filter((z) => z.minRet < z.maxCall);
  const backward = zones.filter((z) => z.minRet >= z.maxCall);
  for (const [i, a] of forward.entries()) {
    for (const b of forward.slice(i + 1))
      if (a.minRet < b.maxCall && b.minRet < a.maxCall) return false;
    for (const b of backward) if (a.minRet < b.maxCall && b.minRet < a.maxCall) return false;
  }
  return true;
}

describe('checkLinearizable() against an independent oracle', () => {
  test("agrees with Gibbons and Korach's zones on random concurrent register histories", () => {
    const prng = new Prng(2024);
    let linearizable = 0;
    for (let round = 0; round < 1000; round++) {
      // A sequential run with wide, overlapping intervals, one read in three then given another value.
      const ops: SimOperation[] = [];
      const written: string[] = [];
      for (let i = 0; i < 14; i++) {
        const point = i * 4;
        const call = point - prng.int(prng.chance(0.3) ? 30 : 6);
        const ret = point + 1 + prng.int(prng.chance(0.3) ? 30 : 6);
        if (prng.chance(0.45)) {
          written.push(`v${i}`);
          ops.push(write(`v${i}`, 'ok', call, ret));
        } else {
          const current = written.at(-1) ?? null;
          ops.push(
            read(prng.chance(0.3) && written.length > 0 ? prng.pick(written) : current, call, ret),
          );
        }
      }
      const expected = zonesAgree(ops);
      if (expected) linearizable++;
      const verdict = checkLinearizable(registerModel, ops);
      if (verdict.ok !== expected)
        throw new Error(
          `The checker says ${verdict.ok}, the zones ${expected}: ${JSON.stringify(ops)}`,
        );
    }
    // Both verdicts are well represented.
    expect(linearizable).toBeGreaterThan(100);
    expect(linearizable).toBeLessThan(900);
  });
});
