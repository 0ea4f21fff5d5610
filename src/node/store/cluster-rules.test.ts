import { describe, expect, test } from 'bun:test';
import { SecretdError } from '../../errors.ts';
import { checkNodeCertExpiry, nodeCertExpiryText } from './cluster-rules.ts';
import { parseCommand } from './commands.ts';
import { Store } from './store.ts';
import { nodeCertExpiryOf } from './types.ts';

const at = '2026-01-01T00:00:00.000Z';

function refusal(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    if (error instanceof SecretdError && error.code === 'invalid') return error.message;
    throw error;
  }
  throw new Error('accepted');
}

describe('the node certificate validity setting', () => {
  test('checkNodeCertExpiry() takes whole milliseconds from 1 minute to 20 years', () => {
    expect(checkNodeCertExpiry(60_000)).toBe(60_000);
    expect(checkNodeCertExpiry(7300 * 86_400_000)).toBe(7300 * 86_400_000);
    expect(
      [59_999, 0, -5, 7300 * 86_400_000 + 1, 1.5e6 + 0.5, '90d', null].map((v) =>
        refusal(() => checkNodeCertExpiry(v)),
      ),
    ).toEqual([
      'Invalid certificate expiry 59s999ms: the minimum is 1m',
      'Invalid certificate expiry 0ms: the minimum is 1m',
      'Invalid certificate expiry -5: the minimum is 1m',
      "Invalid certificate expiry 7300d1ms: the maximum is the root CA's lifetime, 7300d",
      'Invalid certificate expiry: it must be a whole number of milliseconds',
      'Invalid certificate expiry: it must be a whole number of milliseconds',
      'Invalid certificate expiry: it must be a whole number of milliseconds',
    ]);
  });

  test('nodeCertExpiryText() writes durations as they are typed', () => {
    expect(
      [90 * 86_400_000, 7_200_000, 60_000, 36 * 3_600_000 + 1000, 1500].map(nodeCertExpiryText),
    ).toEqual(['90d', '2h', '1m', '1d12h1s', '1s500ms']);
  });

  test('parseCommand() refuses a cluster-update with a bad nodeCertExpiryMs, naming the rule', () => {
    expect(
      refusal(() =>
        parseCommand({ op: 'cluster-update', at, expectedIndex: null, nodeCertExpiryMs: 1000 }),
      ),
    ).toBe('Invalid certificate expiry 1s: the minimum is 1m');
  });

  test('the store keeps the setting; absent, it is 90 days', () => {
    const store = new Store();
    store.apply(1, {
      op: 'cluster-init',
      at,
      clusterId: 'c1',
      caCertPem: 'pem',
      caKey: '',
      joinTokens: { worker: 'w', manager: 'm' },
      unlockKey: null,
      node: { id: 'n1', role: 'manager', hostname: 'h', addr: '127.0.0.1:4377' },
    });
    expect(nodeCertExpiryOf(store.cluster!)).toBe(90 * 86_400_000);
    const result = store.apply(2, {
      op: 'cluster-update',
      at,
      expectedIndex: null,
      nodeCertExpiryMs: 120_000,
    });
    expect(result.ok).toBe(true);
    expect(nodeCertExpiryOf(store.cluster!)).toBe(120_000);
    expect(nodeCertExpiryOf(Store.restore(store.snapshot()).cluster!)).toBe(120_000);
    const refused = store.apply(3, {
      op: 'cluster-update',
      at,
      expectedIndex: null,
      nodeCertExpiryMs: 30_000,
    });
    expect(refused.ok).toBe(false);
    expect(nodeCertExpiryOf(store.cluster!)).toBe(120_000);
  });
});
