/** The node certificate validity setting (`cluster update --cert-expiry`, Docker's CAConfig.NodeCertExpiry). */
import { invalid } from '../../errors.ts';
import { nodeCertExpiryMinMs, rootCertLifetimeMs } from '../../limits.ts';

/** A validity in milliseconds: a whole number from 1 minute (Docker: 1 h) to the root CA's 20 years. */
export function checkNodeCertExpiry(value: unknown): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value))
    throw invalid('Invalid certificate expiry: it must be a whole number of milliseconds');
  if (value < nodeCertExpiryMinMs)
    throw invalid(
      `Invalid certificate expiry ${nodeCertExpiryText(value)}: the minimum is ${nodeCertExpiryText(nodeCertExpiryMinMs)}`,
    );
  if (value > rootCertLifetimeMs)
    throw invalid(
      `Invalid certificate expiry ${nodeCertExpiryText(value)}: the maximum is the root CA's lifetime, ${nodeCertExpiryText(rootCertLifetimeMs)}`,
    );
  return value;
}

/** A validity as people write it: `90d`, `2h`, `1m`, `1d12h`, `1500ms`. */
export function nodeCertExpiryText(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return String(ms);
  const parts: string[] = [];
  let rest = Math.round(ms);
  for (const [unit, size] of [
    ['d', 86_400_000],
    ['h', 3_600_000],
    ['m', 60_000],
    ['s', 1000],
  ] as const) {
    if (rest >= size) {
      parts.push(`${Math.floor(rest / size)}${unit}`);
      rest %= size;
    }
  }
  if (rest > 0 || parts.length === 0) parts.push(`${rest}ms`);
  return parts.join('');
}
