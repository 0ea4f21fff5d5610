/**
 * Starting a root CA rotation through the API, on a real one-node manager through `app.request()`:
 * `POST /secretd/ca/rotate`, and Docker's form (`POST /swarm/update` with `Spec.CAConfig.ForceRotate`
 * incremented, what `docker swarm ca --rotate` sends). The manager renews over its TLS port, which
 * these tests do not serve: the rotation stays in progress, which is what they look at.
 */
import { describe, expect, test } from 'bun:test';
import {
  inspectSwarm,
  updateSwarmCA,
  useManagerApp,
} from '../../../../test/helpers/manager-app.ts';

const api = useManagerApp();

const swarm = () => inspectSwarm(api);
const update = (ca: Record<string, unknown>) => updateSwarmCA(api, ca);

describe('root CA rotation through the API', () => {
  test('GET /swarm reports the root as Docker does, no ForceRotate at 0, and no rotation; GET /secretd/ca/rotation says none runs', async () => {
    const before = await swarm();
    expect(before.Spec.CAConfig.ForceRotate).toBeUndefined();
    expect(before.RootRotationInProgress).toBe(false);
    expect(Object.keys(before.TLSInfo).sort()).toEqual([
      'CertIssuerPublicKey',
      'CertIssuerSubject',
      'TrustRoot',
    ]);
    expect((await api.call('GET', '/secretd/ca/rotation')).json).toEqual({
      InProgress: false,
      ID: null,
      StartedAt: null,
      Converged: 0,
      Total: 0,
      Pending: [],
    });
    // Sent back unchanged (0, as Go sends its zero value), it starts nothing.
    expect(await update({ ForceRotate: 0 })).toEqual({ status: 200, message: '' });
    expect((await swarm()).RootRotationInProgress).toBe(false);
  });

  test('ForceRotate incremented starts a rotation; the same value again changes nothing; another while it runs is 409 with its progress', async () => {
    expect(await update({ ForceRotate: 1 })).toEqual({ status: 200, message: '' });
    const during = await swarm();
    expect({
      inProgress: during.RootRotationInProgress,
      force: during.Spec.CAConfig.ForceRotate,
    }).toEqual({
      inProgress: true,
      force: 1,
    });
    const status = (await api.call('GET', '/secretd/ca/rotation')).json;
    expect(status).toEqual({
      InProgress: true,
      ID: expect.stringMatching(/^\w{25}$/),
      StartedAt: expect.any(String),
      Converged: 0,
      Total: 1,
      Pending: [api.tm.manager.state.nodeId],
    });
    // The root stays the old one until every node has converged.
    expect(during.TLSInfo.TrustRoot).toBe((await api.tm.manager.cluster()).caCertPem);
    expect(await update({ ForceRotate: 1 })).toEqual({ status: 200, message: '' });
    const again = await update({ ForceRotate: 2 });
    expect(again).toEqual({
      status: 409,
      message: `A root CA rotation is already in progress (started at ${status.StartedAt}): 0 of 1 nodes converged`,
    });
    const rotate = await api.call('POST', '/secretd/ca/rotate');
    expect({ status: rotate.status, message: rotate.json.message }).toEqual({
      status: 409,
      message: again.message,
    });
    expect((await api.call('GET', '/secretd/ca/rotation')).json.ID).toBe(status.ID);
  });

  test('a root supplied by the client or an external CA is refused (501) naming the field', async () => {
    for (const [ca, field] of [
      [{ SigningCACert: '-----BEGIN CERTIFICATE-----' }, 'Spec.CAConfig.SigningCACert'],
      [{ SigningCAKey: '-----BEGIN PRIVATE KEY-----' }, 'Spec.CAConfig.SigningCAKey'],
      [{ ExternalCAs: [{ Protocol: 'cfssl', URL: 'https://ca' }] }, 'Spec.CAConfig.ExternalCAs'],
    ] as const) {
      const answer = await update(ca);
      expect({ status: answer.status, named: answer.message.includes(field) }).toEqual({
        status: 501,
        named: true,
      });
    }
  });
});
