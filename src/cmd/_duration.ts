/** Go's duration syntax, as the docker CLI and compose files write it. */
import { SecretdError } from '../errors.ts';

/** Go-style durations (`1s`, `500ms`, `1m30s`) to nanoseconds, as Docker's API carries them. */
export function durationNs(text: string): number {
  const units: Record<string, number> = { ns: 1, us: 1e3, ms: 1e6, s: 1e9, m: 60e9, h: 3600e9 };
  const pattern = /(\d+(?:\.\d+)?)(ns|us|ms|s|m|h)/g;
  let total = 0;
  let consumed = 0;
  for (const match of text.matchAll(pattern)) {
    total += Number(match[1]) * units[match[2]!]!;
    consumed += match[0].length;
  }
  if (text === '0') return 0;
  if (consumed !== text.length || consumed === 0)
    throw new SecretdError(
      'invalid',
      `Invalid duration ${JSON.stringify(text)}: expected e.g. 500ms, 2s, 1m`,
    );
  return Math.round(total);
}

/**
 * A certificate lifetime as people write it (`90d`, `12h`, `30m`, `1d12h`): Go's units plus `d`
 * (24 h), as `docker swarm update --cert-expiry` does not take but operators expect. Milliseconds.
 */
export function lifetimeMs(text: string): number {
  const days = /^(\d+)d(.*)$/.exec(text);
  const dayMs = days ? Number(days[1]) * 24 * 3600 * 1000 : 0;
  const rest = days ? days[2]! : text;
  if (days && rest === '') return dayMs;
  try {
    return dayMs + Math.round(durationNs(rest) / 1e6);
  } catch {
    throw new SecretdError(
      'invalid',
      `Invalid duration ${JSON.stringify(text)}: expected e.g. 90d, 12h, 30m or 1d12h`,
    );
  }
}
