/**
 * Randomized safety test: many seeds, each a few hundred random steps of message delivery in any
 * order, drops, duplicates, partitions, crash-restarts, compactions, leadership transfers and
 * (on odd seeds) membership changes. The harness checks after every step that there is at most one
 * leader per term and that all members agree on every committed entry, ever. At the end every
 * fault is healed and the cluster must commit a new entry on every member (liveness).
 * A failure names the seed; rerun one with RAFT_SEED=<seed>, or sweep more with RAFT_SEEDS=<count>.
 */
import { expect, test } from 'bun:test';
import { SecretdError } from '../errors.ts';
import { RaftNetwork, bytes, mid, seededRandom } from '../../test/raft-harness.ts';

// RAFT_SEED=n runs one seed; RAFT_SEEDS=count (from RAFT_SEED_FROM, default 0) runs a longer sweep.
const seedFrom = Number(process.env.RAFT_SEED_FROM ?? 0);
const seeds =
  process.env.RAFT_SEED === undefined
    ? Array.from({ length: Number(process.env.RAFT_SEEDS ?? 200) }, (_, i) => seedFrom + i)
    : [Number(process.env.RAFT_SEED)];
const stepsPerSeed = 400;

/** Run `action`, ignoring the expected refusals (not leader, change pending, ...). */
function attempt(action: () => void): void {
  try {
    action();
  } catch (error) {
    if (!(error instanceof SecretdError)) throw error;
  }
}

function pick<T>(random: () => number, items: readonly T[]): T | undefined {
  return items[Math.floor(random() * items.length)];
}

class Scenario {
  readonly random: () => number;
  readonly net: RaftNetwork;
  readonly membership: boolean;
  #proposals = 0;

  constructor(seed: number) {
    this.random = seededRandom(seed * 7919 + 17);
    this.membership = seed % 2 === 1;
    const voters = this.random() < 0.5 ? ['a', 'b', 'c'] : ['a', 'b', 'c', 'd', 'e'];
    this.net = new RaftNetwork({
      voters,
      spares: this.membership ? ['x', 'y'] : [],
      seed,
      electionTicks: 6,
      heartbeatTicks: 1,
      maxEntriesPerMessage: 1 + Math.floor(this.random() * 3),
      maxInflightMessages: 1 + Math.floor(this.random() * 3),
      recordReadies: false,
    });
  }

  step(): void {
    const net = this.net;
    const live = net.live();
    const someone = pick(this.random, live)?.id;
    const r = this.random();
    if (r < 0.35) this.#deliverSome();
    else if (r < 0.39) net.inFlight.splice(Math.floor(this.random() * net.inFlight.length), 1);
    else if (r < 0.41) {
      const copy = pick(this.random, net.inFlight);
      if (copy !== undefined) net.deliver(copy);
    } else if (r < 0.56) net.tickAll();
    else if (r < 0.7) this.#propose();
    else if (r < 0.72 && someone !== undefined)
      attempt(() => net.readIndex(someone, `read-${this.#proposals}-${r}`));
    else if (r < 0.74) this.#partition();
    else if (r < 0.77) net.heal();
    else if (r < 0.785 && someone !== undefined && live.length > 1) net.crash(someone);
    else if (r < 0.82) this.#restartOne();
    else if (r < 0.84 && someone !== undefined) this.#compact(someone);
    else if (r < 0.86) this.#transfer();
    else if (r < 0.89 && this.membership) this.#changeMembership();
    else if (r < 0.9 && someone !== undefined) net.core(someone).campaign();
    else this.#deliverSome();
    net.processAllReady();
  }

  /** Heal everything; a leader must then commit a new entry on every member of the configuration. */
  converge(): void {
    const net = this.net;
    net.heal();
    for (const member of net.members.values()) if (member.core === null) net.restart(member.id);
    const final = `final-${this.#proposals}`;
    // A proposal can be lost when its leader is deposed: propose again to each new leader.
    let proposedTo = '';
    const members = (): string[] => {
      const leader = net.leader();
      if (leader === null) return [];
      const { conf } = net.core(leader).status();
      return [...conf.voters, ...conf.learners];
    };
    net.tickUntil(() => {
      const leader = net.leader();
      if (leader === null) return false;
      const term = net.core(leader).status().term;
      if (
        proposedTo !== `${leader}@${term}` &&
        !net.member(leader).appliedTexts().includes(final)
      ) {
        attempt(() => (net.core(leader).propose(bytes(final)), (proposedTo = `${leader}@${term}`)));
      }
      return members().every((id) => net.member(id).appliedTexts().includes(final));
    }, 3000);
    // Then every member of the configuration ends with the same state machine.
    net.tickUntil(() => {
      const [first, ...rest] = members().map((id) => JSON.stringify(net.member(id).applied));
      return first !== undefined && rest.every((applied) => applied === first);
    }, 100);
  }

  /** Deliver a random number of in-flight messages, picked in random order. */
  #deliverSome(): void {
    const count = 1 + Math.floor(this.random() * this.net.inFlight.length);
    for (let i = 0; i < count && this.net.inFlight.length > 0; i++) {
      this.net.deliverAt(Math.floor(this.random() * this.net.inFlight.length));
    }
  }

  #propose(): void {
    const leader = this.net.leader();
    if (leader !== null)
      attempt(() => this.net.core(leader).propose(bytes(`v${this.#proposals++}`)));
  }

  #partition(): void {
    const ids = [...this.net.members.keys()];
    const side = ids.filter(() => this.random() < 0.5);
    this.net.partition([side, ids.filter((id) => !side.includes(id))]);
  }

  #restartOne(): void {
    const down = [...this.net.members.values()].filter((member) => member.core === null);
    const member = pick(this.random, down);
    if (member !== undefined) this.net.restart(member.id);
  }

  #compact(id: string): void {
    const status = this.net.core(id).status();
    const snapshotIndex = this.net.member(id).disk.snapshot?.meta.index ?? 0;
    if (status.applied > snapshotIndex) this.net.compact(id);
  }

  #transfer(): void {
    const leader = this.net.leader();
    if (leader === null) return;
    const target = pick(this.random, this.net.core(leader).status().conf.voters);
    if (target !== undefined) attempt(() => this.net.core(leader).transferLeadership(target));
  }

  #changeMembership(): void {
    const leader = this.net.leader();
    if (leader === null) return;
    const conf = this.net.core(leader).status().conf;
    const members = [...conf.voters, ...conf.learners];
    const outsiders = [...this.net.members.keys()].filter((id) => !members.includes(id));
    const choice = this.random();
    const id =
      choice < 0.4
        ? pick(this.random, outsiders)
        : choice < 0.7
          ? pick(this.random, conf.learners)
          : pick(this.random, members);
    if (id === undefined) return;
    const kind = choice < 0.4 ? 'add-learner' : choice < 0.7 ? 'promote' : 'remove';
    attempt(() => this.net.core(leader).proposeConfChange({ kind, id: mid(id) }));
  }
}

test(
  `random faults over ${seeds.length} seeds keep one leader per term and one committed log`,
  () => {
    let committedEntries = 0;
    for (const seed of seeds) {
      const scenario = new Scenario(seed);
      try {
        for (let i = 0; i < stepsPerSeed; i++) scenario.step();
        scenario.converge();
      } catch (error) {
        throw new Error(
          `seed ${seed} failed (rerun with RAFT_SEED=${seed}): ${(error as Error).stack}`,
        );
      }
      committedEntries += scenario.net.committed.size;
    }
    // Guard against a harness that silently does nothing.
    expect(committedEntries).toBeGreaterThan(seeds.length * 5);
  },
  Math.max(60_000, seeds.length * 200),
);
