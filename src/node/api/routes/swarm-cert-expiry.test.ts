/** `POST /swarm/update` with `Spec.CAConfig.NodeCertExpiry` (what `docker swarm update --cert-expiry` sends), through `app.request()`. */
import { describe, expect, test } from 'bun:test';
import {
  inspectSwarm,
  updateSwarmCA,
  useManagerApp,
} from '../../../../test/helpers/manager-app.ts';

const hourNs = 3_600_000_000_000;
const api = useManagerApp();

const swarm = () => inspectSwarm(api);
const update = (ca: Record<string, unknown>) => updateSwarmCA(api, ca);

describe('CAConfig.NodeCertExpiry', () => {
  test('GET /swarm reports 90 days in nanoseconds until it is changed, then the new value', async () => {
    expect((await swarm()).Spec.CAConfig).toEqual({ NodeCertExpiry: 2160 * hourNs });
    expect(await update({ NodeCertExpiry: 2 * hourNs })).toEqual({ status: 200, message: '' });
    expect((await swarm()).Spec.CAConfig).toEqual({ NodeCertExpiry: 2 * hourNs });
    expect((await api.tm.manager.cluster()).nodeCertExpiryMs).toBe(7_200_000);
  });

  test('refuses bad values with 400 and changes nothing', async () => {
    const before = await swarm();
    for (const [value, message] of [
      [30 * 1e9, 'Invalid certificate expiry 30s: the minimum is 1m'],
      ['2h', 'Invalid swarm spec: CAConfig.NodeCertExpiry must be a whole number of nanoseconds'],
      [
        -hourNs,
        'Invalid swarm spec: CAConfig.NodeCertExpiry must be a whole number of nanoseconds',
      ],
      [
        7301 * 24 * hourNs,
        "Invalid certificate expiry 7301d: the maximum is the root CA's lifetime, 7300d",
      ],
    ] as const) {
      expect(await update({ NodeCertExpiry: value })).toEqual({ status: 400, message });
    }
    // Within 20 years, but past what is left of the CA's (created a moment ago, so a little less).
    const tooLong = await update({ NodeCertExpiry: 7300 * 24 * hourNs });
    expect(tooLong.status).toBe(400);
    expect(tooLong.message).toMatch(
      /^Invalid certificate expiry 7300d: it is longer than the root CA's remaining life \(7299d23h59m\d+s\d*m?s?, until \d{4}-\d\d-\d\dT/,
    );
    const after = await swarm();
    expect(after.Spec.CAConfig).toEqual(before.Spec.CAConfig);
    expect(after.Version.Index).toBe(before.Version.Index);
  });

  test('the rest of CAConfig stays fixed: a change there is still a 501 naming the field', async () => {
    const answer = await update({ ExternalCAs: [{ Protocol: 'cfssl', URL: 'https://ca' }] });
    expect(answer.status).toBe(501);
    expect(answer.message).toContain('Spec.CAConfig.ExternalCAs is not set here');
    // Sent back unchanged (or as Go's zero values), the other fields are accepted.
    expect(await update({ ExternalCAs: [], ForceRotate: 0, SigningCACert: '' })).toEqual({
      status: 200,
      message: '',
    });
  });
});
