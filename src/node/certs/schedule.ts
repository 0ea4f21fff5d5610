/**
 * When a node renews its certificate, pure: a random point between 50% and 80% of the
 * certificate's validity (so that a thousand nodes issued together do not renew in the same
 * second), and after a failed attempt an exponential back-off from 5 s up to 1 h, as Docker's
 * renewer does (`ca/renewer.go`, `calculateRandomExpiry`).
 *
 * The validity counts from when the certificate was issued: every certificate is backdated by
 * `certBackdateMs` (1 h) against clock skew, and with a one-minute validity the backdate would
 * otherwise put the whole window after the certificate's end.
 */
import type { Random } from '../../crypto/index.ts';
import {
  certBackdateMs,
  certRenewalBackoffBaseMs,
  certRenewalBackoffMaxMs,
  certRenewalWindowEnd,
  certRenewalWindowStart,
} from '../../limits.ts';

export interface Validity {
  readonly notBefore: Date;
  readonly notAfter: Date;
}

/** When the certificate was issued: its notBefore plus the backdate, when that leaves a validity. */
export function issuedAtMs(validity: Validity): number {
  const notBefore = validity.notBefore.getTime();
  const issued = notBefore + certBackdateMs;
  return issued < validity.notAfter.getTime() ? issued : notBefore;
}

/**
 * The wall-clock time (ms since the epoch) at which to renew: issue time + validity × a fraction
 * drawn uniformly from [certRenewalWindowStart, certRenewalWindowEnd).
 */
export function renewalDueMs(validity: Validity, random: Random): number {
  const issued = issuedAtMs(validity);
  const lifetime = validity.notAfter.getTime() - issued;
  const fraction =
    certRenewalWindowStart + (certRenewalWindowEnd - certRenewalWindowStart) * unit(random);
  return issued + Math.floor(lifetime * fraction);
}

/** The wait before the next attempt after `failures` failed ones in a row (1 or more). */
export function renewalBackoffMs(failures: number): number {
  const doublings = Math.max(0, Math.min(failures - 1, 30));
  return Math.min(certRenewalBackoffBaseMs * 2 ** doublings, certRenewalBackoffMaxMs);
}

/** A number in [0, 1) from four random bytes. */
function unit(random: Random): number {
  const bytes = random(4);
  return new DataView(bytes.buffer, bytes.byteOffset, 4).getUint32(0) / 2 ** 32;
}
