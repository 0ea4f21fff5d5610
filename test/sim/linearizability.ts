/**
 * A linearizability checker for client histories, written from the papers:
 *
 *   - Wing & Gong, "Testing and verifying concurrent objects" (1993): search for a total order of
 *     the operations that respects real time (an operation that returned before another was called
 *     comes first) and that a sequential model accepts;
 *   - Lowe, "Testing for linearizability" (2017): keep the call and return events in a linked
 *     list, "lift" an operation out when the model accepts it next, backtrack when no operation
 *     called before the first pending return fits, and never revisit a configuration (set of
 *     placed operations, model state). Candidates are tried earliest return first;
 *   - Horn & Kroening, "Faster linearizability checking via P-compositionality" (2015): a history
 *     of independent objects (keys) is linearizable iff each object's sub-history is, so each key
 *     is checked alone, which keeps the search small.
 *
 * Intervals are closed: operations whose call and return times touch are concurrent. An operation
 * with an unknown outcome (a timeout, a crash: Jepsen's :info) has output `undefined`; it may take
 * effect at any point after its call, or never, so its return is at +infinity and the search is
 * done as soon as every operation with a known outcome is placed. Reads that failed have no
 * effect and are left out of the history by the caller.
 *
 * The search has a step budget: running out is reported as 'budget', never as success.
 */

export interface Operation<I, O> {
  readonly input: I;
  /** undefined: the outcome is unknown. */
  readonly output: O | undefined;
  readonly call: number;
  /** Ignored (taken as +infinity) when the outcome is unknown. */
  readonly ret: number;
}

export interface Model<S, I, O> {
  readonly init: S;
  /** The state after applying `input` with result `output`, or undefined if the model cannot give that result. An undefined output accepts any result. */
  step(state: S, input: I, output: O | undefined): S | undefined;
  /** Equal states must have equal keys (the search caches on it). */
  key(state: S): string;
}

export type Verdict<Op> =
  | { readonly ok: true; readonly steps: number }
  | {
      readonly ok: false;
      readonly reason: 'not-linearizable' | 'budget';
      readonly steps: number;
      /** The longest order found that the model accepts, for the report. */
      readonly longest: readonly Op[];
      /** Operations that could have come next after `longest`, none of which the model accepted. */
      readonly stuck: readonly Op[];
    };

export interface CheckOptions {
  /** Search steps before giving up with 'budget'. Default 5,000,000. */
  readonly stepsMax?: number;
}

interface ListNode {
  readonly op: number;
  readonly isCall: boolean;
  readonly time: number;
  prev: ListNode | null;
  next: ListNode | null;
  /** A call's return node. */
  match: ListNode | null;
}

export function checkLinearizable<S, I, O, Op extends Operation<I, O>>(
  model: Model<S, I, O>,
  ops: readonly Op[],
  options: CheckOptions = {},
): Verdict<Op> {
  const stepsMax = options.stepsMax ?? 5_000_000;
  const head = buildList(ops);
  const placed = new Uint32Array((ops.length + 31) >>> 5);
  const seen = new Set<string>();
  // One frame per operation placed: the state after it, and the candidates for the next place.
  const stack: Frame<S>[] = [
    { via: null, state: model.init, candidates: candidates(head), next: 0 },
  ];
  let knownLeft = ops.filter((op) => op.output !== undefined).length;
  let steps = 0;
  let longest: Op[] = [];
  let stuck: Op[] = [];

  // Done once every operation with a known outcome is placed: the rest go last, or never happen.
  while (knownLeft > 0) {
    if (++steps > stepsMax) return { ok: false, reason: 'budget', steps, longest, stuck };
    const frame = stack[stack.length - 1]!;
    if (frame.next === frame.candidates.length) {
      // No candidate fits here: take back the placement that led here and try the next one.
      stack.pop();
      if (frame.via === null)
        return { ok: false, reason: 'not-linearizable', steps, longest, stuck };
      flip(placed, frame.via.op);
      unlift(frame.via);
      if (ops[frame.via.op]!.output !== undefined) knownLeft++;
      continue;
    }
    const node = frame.candidates[frame.next++]!;
    const op = ops[node.op]!;
    const state = model.step(frame.state, op.input, op.output);
    if (state === undefined) continue;
    flip(placed, node.op);
    const configuration = `${placed.join(',')}|${model.key(state)}`;
    if (seen.has(configuration)) {
      flip(placed, node.op);
      continue;
    }
    seen.add(configuration);
    lift(node);
    if (op.output !== undefined) knownLeft--;
    const next: Frame<S> = { via: node, state, candidates: candidates(head), next: 0 };
    stack.push(next);
    if (stack.length - 1 > longest.length) {
      longest = stack.slice(1).map((f) => ops[f.via!.op]!);
      stuck = next.candidates.map((c) => ops[c.op]!);
    }
  }
  return { ok: true, steps };
}

interface Frame<S> {
  /** The call placed to reach this frame (null for the first). */
  readonly via: ListNode | null;
  readonly state: S;
  readonly candidates: readonly ListNode[];
  next: number;
}

export interface KeyedVerdict<Op> {
  readonly key: string;
  readonly verdict: Verdict<Op>;
}

/** Checks each key's operations alone (P-compositionality): the first key that fails (or null), and the search steps taken. */
export function checkByKey<S, I, O, Op extends Operation<I, O> & { readonly key: string }>(
  ops: readonly Op[],
  modelFor: (key: string) => Model<S, I, O>,
  options: CheckOptions = {},
): { readonly failed: KeyedVerdict<Op> | null; readonly steps: number } {
  const byKey = new Map<string, Op[]>();
  for (const op of ops) {
    const list = byKey.get(op.key);
    if (list === undefined) byKey.set(op.key, [op]);
    else list.push(op);
  }
  let steps = 0;
  for (const [key, list] of [...byKey].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    const verdict = checkLinearizable(modelFor(key), list, options);
    steps += verdict.steps;
    if (!verdict.ok) return { failed: { key, verdict }, steps };
  }
  return { failed: null, steps };
}

/** Call and return events in time order (a call first when times are equal: intervals are closed). */
function buildList<I, O>(ops: readonly Operation<I, O>[]): ListNode {
  const nodes: ListNode[] = [];
  for (const [i, op] of ops.entries()) {
    const ret = op.output === undefined ? Infinity : op.ret;
    if (!(ret >= op.call))
      throw new Error(`Operation ${i} returns (${ret}) before it is called (${op.call})`);
    const call: ListNode = {
      op: i,
      isCall: true,
      time: op.call,
      prev: null,
      next: null,
      match: null,
    };
    const back: ListNode = { op: i, isCall: false, time: ret, prev: null, next: null, match: null };
    call.match = back;
    nodes.push(call, back);
  }
  nodes.sort((a, b) => a.time - b.time || Number(b.isCall) - Number(a.isCall) || a.op - b.op);
  const head: ListNode = {
    op: -1,
    isCall: false,
    time: -Infinity,
    prev: null,
    next: null,
    match: null,
  };
  let last = head;
  for (const node of nodes) {
    last.next = node;
    node.prev = last;
    last = node;
  }
  return head;
}

/** Takes a call and its return out of the list. */
function lift(call: ListNode): void {
  const back = call.match!;
  call.prev!.next = call.next;
  call.next!.prev = call.prev;
  back.prev!.next = back.next;
  if (back.next !== null) back.next.prev = back.prev;
}

/** Puts them back, in the reverse order of lift(). */
function unlift(call: ListNode): void {
  const back = call.match!;
  back.prev!.next = back;
  if (back.next !== null) back.next.prev = back;
  call.prev!.next = call;
  call.next!.prev = call;
}

function flip(bits: Uint32Array, i: number): void {
  const word = i >>> 5;
  bits[word] = (bits[word] ?? 0) ^ (1 << (i & 31));
}

/**
 * The calls before the first pending return (those that may come next), earliest return first:
 * an operation that must return soon is the likeliest to come next, and trying it first keeps the
 * search from wandering through orders of long-running writes that any early read rules out.
 */
function candidates(head: ListNode): ListNode[] {
  const out: ListNode[] = [];
  for (let node = head.next; node !== null && node.isCall; node = node.next) out.push(node);
  return out.sort((a, b) => a.match!.time - b.match!.time || a.time - b.time);
}
