/**
 * The node's side of renewal: every node (manager or worker) renews its own certificate before it
 * ends, over its mTLS connection to a manager, with a new key each time.
 *
 *   when     at a random point between 50% and 80% of the certificate's validity (schedule.ts);
 *            at once when told (`renewNow`: the dispatcher saw a role change); after a failure,
 *            again after 5 s, 10 s, … up to 1 h
 *   how      a new key and CSR here (the key never leaves the node); POST to a manager
 *            (peerPaths.renewCertificate) naming this node; the answer checked whole (signed by
 *            this cluster's CA, for this key, naming this node and cluster, not yet expired)
 *            before anything is written
 *   trust    the answer carries the roots to trust (both during a root rotation, the new one
 *            after): the new certificate must chain to them (through its chain, leaf first); they
 *            come from a manager this node authenticated, and are written and applied with the pair
 *   then     `persist` writes the pair (keys file and certificate, in an order a start-up can
 *            resolve), and only then `apply` takes it into use for new connections: the TLS server
 *            and the peer client; connections already open keep the old certificate, which is
 *            still valid, so nothing in flight fails
 *
 * Time: the certificate's dates are wall-clock (`now`); waits go through the Timers port, never
 * longer than certRenewalCheckMaxMs at a time, so a long validity or a clock that jumps is seen.
 */
import { createPrivateKey, X509Certificate } from 'node:crypto';
import {
  createKeyAndCSR,
  parseIdentity,
  verifyChain,
  type KeyAndCSR,
  type Random,
} from '../../crypto/index.ts';
import { SecretdError } from '../../errors.ts';
import { certRenewalCheckMaxMs, certRenewalTimeoutMs } from '../../limits.ts';
import type { Timers } from '../../io/timers.ts';
import { peerPaths, reasonOf, type PeerClient } from '../peers/index.ts';
import { renewalBackoffMs, renewalDueMs } from './schedule.ts';

export interface RenewedPair {
  /** The certificate, followed by its chain during a root rotation. */
  readonly certPem: string;
  /** The roots to trust from now on (PEM, one or two certificates), as the manager answered. */
  readonly caPem: string;
  /** PKCS#8; handed over to `persist` and `apply`, which keep it (the renewer does not zero it). */
  readonly keyPkcs8: Uint8Array;
}

export interface RenewerOptions {
  readonly nodeId: string;
  readonly clusterId: string;
  /** The cluster CA (PEM) the new certificate must chain to. */
  readonly caPem: () => string;
  /** This node's certificate in use now (PEM). */
  readonly certificate: () => string;
  /** Managers to ask, best first. */
  readonly managers: () => readonly string[];
  readonly peers: Pick<PeerClient, 'request'>;
  readonly timers: Timers;
  /** The wall clock, for certificate dates. */
  readonly now: () => Date;
  /** Draws the point in the renewal window. */
  readonly random: Random;
  /** Writes the new pair to disk; it is taken into use only once this resolves. */
  readonly persist: (pair: RenewedPair) => Promise<void>;
  /** Takes the written pair into use for new connections. */
  readonly apply: (pair: RenewedPair) => void;
  /**
   * Tells the managers which certificate this node uses now, once applied (a root rotation
   * counts the nodes that converged); a failure is logged, and the leader asks again.
   */
  readonly report?: () => Promise<void>;
  readonly log: (line: string) => void;
  /** A new key and CSR (default: crypto's, P-256); tests pass their own. */
  readonly createKeyAndCSR?: () => Promise<KeyAndCSR>;
}

export class CertRenewer {
  readonly #options: RenewerOptions;
  #cancelTimer: (() => void) | null = null;
  /** When the certificate in use is due, and for which certificate (drawn once per certificate). */
  #due: { readonly certPem: string; readonly atMs: number } | null = null;
  #failures = 0;
  #running: Promise<void> | null = null;
  /** A renewal was asked for while one ran: run again once it ends. */
  #again: string | null = null;
  #stopped = false;

  constructor(options: RenewerOptions) {
    this.#options = options;
  }

  start(): void {
    this.#schedule();
  }

  stop(): void {
    this.#stopped = true;
    this.#cancelTimer?.();
    this.#cancelTimer = null;
  }

  /** Failed attempts in a row (for tests and diagnostics). */
  get failures(): number {
    return this.#failures;
  }

  /** Renews now (a role change, a root rotation): `reason` goes into the log. */
  renewNow(reason: string): void {
    if (this.#stopped) return;
    if (this.#running) {
      this.#again = reason;
      return;
    }
    this.#cancelTimer?.();
    this.#cancelTimer = null;
    this.#run(reason);
  }

  /** The attempt under way, if any (tests wait on it). */
  get settled(): Promise<void> {
    return this.#running ?? Promise.resolve();
  }

  #schedule(): void {
    if (this.#stopped) return;
    const certPem = this.#options.certificate();
    if (this.#due?.certPem !== certPem) {
      const { notBefore, notAfter } = parseIdentity(certPem);
      this.#due = { certPem, atMs: renewalDueMs({ notBefore, notAfter }, this.#options.random) };
    }
    const waitMs = this.#due.atMs - this.#options.now().getTime();
    if (waitMs <= 0) {
      this.#run('the certificate reached its renewal time');
      return;
    }
    this.#cancelTimer = this.#options.timers.after(Math.min(waitMs, certRenewalCheckMaxMs), () => {
      this.#cancelTimer = null;
      this.#schedule();
    });
  }

  #run(reason: string): void {
    this.#running = this.#attempt(reason).then(
      () => {
        this.#failures = 0;
        this.#running = null;
        this.#next();
      },
      (error: unknown) => {
        this.#failures++;
        this.#running = null;
        const waitMs = renewalBackoffMs(this.#failures);
        this.#options.log(
          `secretd: certificate renewal failed (${reason}): ${reasonOf(error)}; trying again in ${Math.round(waitMs / 1000)} s`,
        );
        if (this.#again !== null) reason = this.#again;
        this.#again = null;
        if (this.#stopped) return;
        this.#cancelTimer = this.#options.timers.after(waitMs, () => {
          this.#cancelTimer = null;
          this.#run(`retry after ${this.#failures} failure(s): ${reason}`);
        });
      },
    );
  }

  #next(): void {
    const again = this.#again;
    this.#again = null;
    if (again !== null) this.#run(again);
    else this.#schedule();
  }

  async #attempt(reason: string): Promise<void> {
    if (this.#stopped) return;
    const { keyPkcs8, csrPem } = await (this.#options.createKeyAndCSR ?? createKeyAndCSR)();
    let handedOver = false;
    try {
      const answer = await this.#ask(csrPem);
      const caPem = answer.caPem ?? this.#options.caPem();
      const { certPem } = answer;
      const notAfter = await this.#check(certPem, caPem, keyPkcs8);
      if (this.#stopped) return;
      await this.#options.persist({ certPem, caPem, keyPkcs8 });
      handedOver = true;
      this.#options.apply({ certPem, caPem, keyPkcs8 });
      const identity = parseIdentity(certPem);
      this.#options.log(
        `secretd: certificate renewed (${reason}): ${identity.role} certificate ${identity.serialHex}, valid until ${notAfter.toISOString()}`,
      );
      await this.#options
        .report?.()
        .catch((error: unknown) =>
          this.#options.log(
            `secretd: telling the managers about the renewed certificate failed: ${reasonOf(error)}`,
          ),
        );
    } finally {
      if (!handedOver) keyPkcs8.fill(0);
    }
  }

  /** Each manager in turn; a refusal (403) ends the attempt (another manager would say the same). */
  async #ask(csrPem: string): Promise<{ certPem: string; caPem: string | undefined }> {
    const body = new TextEncoder().encode(
      JSON.stringify({ NodeID: this.#options.nodeId, CSR: csrPem }),
    );
    const managers = [...new Set(this.#options.managers())];
    if (managers.length === 0)
      throw new SecretdError('unavailable', 'No manager is known to ask for a certificate');
    let last = '';
    for (const addr of managers) {
      let status: number;
      let answer: Record<string, unknown> | null;
      try {
        const response = await this.#options.peers.request(
          addr,
          'POST',
          peerPaths.renewCertificate,
          body,
          { timeoutMs: certRenewalTimeoutMs, contentType: 'application/json' },
        );
        status = response.status;
        answer = parseObject(response.body);
      } catch (error) {
        last = `${addr}: ${reasonOf(error)}`;
        continue;
      }
      const message = typeof answer?.message === 'string' ? answer.message : `HTTP ${status}`;
      if (status === 200 && typeof answer?.Certificate === 'string')
        return {
          certPem: answer.Certificate,
          caPem: typeof answer.CA === 'string' && answer.CA !== '' ? answer.CA : undefined,
        };
      if (status === 403)
        throw new SecretdError('forbidden', `The manager at ${addr} refused: ${message}`);
      last = `${addr}: ${message}`;
    }
    throw new SecretdError('unavailable', `No manager renewed the certificate (${last})`);
  }

  /** The answer before anything is written: chains to the roots given, this key, this node and cluster, still valid. */
  async #check(certPem: string, caPem: string, keyPkcs8: Uint8Array): Promise<Date> {
    const bad = (why: string): SecretdError =>
      new SecretdError('unavailable', `The renewed certificate was refused: ${why}`);
    let identity: ReturnType<typeof parseIdentity>;
    let ownsKey: boolean;
    let signed: boolean;
    try {
      identity = parseIdentity(certPem);
      const [leaf, ...chain] = certPem.split(/(?=-----BEGIN CERTIFICATE-----)/);
      const verdict = await verifyChain(leaf ?? '', {
        chainPems: chain,
        trustedRootPems: [caPem],
        now: this.#options.now(),
      });
      signed = verdict.ok;
      ownsKey = new X509Certificate(certPem).checkPrivateKey(
        createPrivateKey({ key: Buffer.from(keyPkcs8), format: 'der', type: 'pkcs8' }),
      );
    } catch {
      throw bad('it is not a secretd certificate');
    }
    if (!signed) throw bad("it is not signed by this cluster's CA");
    if (!ownsKey) throw bad("it is not for this node's new key");
    if (identity.nodeId !== this.#options.nodeId || identity.clusterId !== this.#options.clusterId)
      throw bad(`it names node ${identity.nodeId} of cluster ${identity.clusterId}`);
    if (identity.role === 'admin') throw bad('it is an admin certificate');
    if (identity.notAfter.getTime() <= this.#options.now().getTime())
      throw bad(`it expired at ${identity.notAfter.toISOString()}`);
    return identity.notAfter;
  }
}

function parseObject(bytes: Uint8Array): Record<string, unknown> | null {
  try {
    const value: unknown = JSON.parse(new TextDecoder().decode(bytes));
    return typeof value === 'object' && value !== null && !Array.isArray(value)
      ? (value as Record<string, unknown>)
      : null;
  } catch {
    return null;
  }
}
