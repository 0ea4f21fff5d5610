/** The client certificate routes (issue, list, revoke) through `app.request()` against a real manager. */
import { beforeAll, describe, expect, test } from 'bun:test';
import { createKeyAndCSR, parseIdentity } from '../../../crypto/index.ts';
import { useManagerApp } from '../../../../test/helpers/manager-app.ts';

const path = '/secretd/ca/client-certificates';
const minuteNs = 60e9;
const hourMs = 3600_000;

const api = useManagerApp();
const call = api.call;
let csr: string;

beforeAll(async () => {
  csr = (await createKeyAndCSR({ commonName: 'x' })).csrPem;
});
const serials = async (): Promise<string[]> =>
  (await call('GET', path)).json.map((c: { Serial: string }) => c.Serial);

describe('POST /secretd/ca/client-certificates', () => {
  test('refuses a bad name, CSR or Expiry with 400 naming the field, and records nothing', async () => {
    const before = await serials();
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ Name: 'a b', CSR: csr }, 'Name must be 1 to 64 characters'],
      [{ CSR: csr }, 'Name must be 1 to 64 characters'],
      [{ Name: 'ok', CSR: 'not a csr' }, 'CSR must be a PEM certificate signing request'],
      [{ Name: 'ok', CSR: csr, Expiry: '2h' }, 'Expiry must be a whole number of nanoseconds'],
      [{ Name: 'ok', CSR: csr, Expiry: minuteNs - 1 }, 'at least 60000000000 (1 minute)'],
      [{ Name: 'ok', CSR: csr, Expiry: minuteNs + 0.5 }, 'Expiry must be a whole number'],
      [{ Name: 'ok', CSR: csr, Expiry: -minuteNs }, 'Expiry must be a whole number'],
      [{ Name: 'ok', CSR: csr, Expiry: true }, 'Expiry must be a whole number'],
      [{ Name: 'ok', CSR: csr, Lifetime: minuteNs }, 'Lifetime'],
    ];
    for (const [body, message] of cases) {
      const answer = await call('POST', path, body);
      expect({ body, status: answer.status }).toEqual({ body, status: 400 });
      expect(answer.json.message).toContain(message);
    }
    expect(await serials()).toEqual(before);
  });

  test('refuses an Expiry beyond the CA certificate with 400 naming its expiry, and records nothing', async () => {
    const before = await serials();
    const answer = await call('POST', path, {
      Name: 'forever',
      CSR: csr,
      Expiry: 30 * 365 * 24 * 3600 * 1e9,
    });
    expect(answer.status).toBe(400);
    expect(answer.json.message).toMatch(
      /^Cannot issue client certificate forever: its expiry goes beyond the CA certificate's, \d{4}-/,
    );
    expect(await serials()).toEqual(before);
  });

  test('issues for Expiry nanoseconds: the certificate expires then, and is recorded with it', async () => {
    const answer = await call('POST', path, { Name: 'ci', CSR: csr, Expiry: 2 * 3600e9 });
    expect(answer.status).toBe(201);
    const cert = parseIdentity(answer.json.Certificate as string);
    expect(cert.role).toBe('admin');
    expect(cert.nodeId).toBe('ci');
    expect(cert.serialHex).toBe(answer.json.Serial);
    expect(answer.json.ExpiresAt).toBe(cert.notAfter.toISOString());
    expect(Date.parse(answer.json.ExpiresAt) - Date.parse(answer.json.IssuedAt)).toBe(2 * hourMs);
    const listed = (await call('GET', path)).json.find(
      (c: { Serial: string }) => c.Serial === answer.json.Serial,
    );
    expect(listed).toEqual({
      Serial: answer.json.Serial,
      Name: 'ci',
      Role: 'admin',
      Scope: [],
      IssuedAt: answer.json.IssuedAt,
      ExpiresAt: answer.json.ExpiresAt,
      RevokedAt: null,
    });
  });

  test('without Expiry, a certificate is valid 90 days', async () => {
    const answer = await call('POST', path, { Name: 'default', CSR: csr });
    expect(answer.status).toBe(201);
    expect(Date.parse(answer.json.ExpiresAt) - Date.parse(answer.json.IssuedAt)).toBe(
      90 * 24 * hourMs,
    );
  });
});

describe('GET and DELETE /secretd/ca/client-certificates', () => {
  test('the list never carries a certificate or a key', async () => {
    await call('POST', path, { Name: 'listed', CSR: csr });
    const answer = await call('GET', path);
    expect(answer.status).toBe(200);
    for (const entry of answer.json)
      expect(Object.keys(entry).sort()).toEqual([
        'ExpiresAt',
        'IssuedAt',
        'Name',
        'RevokedAt',
        'Role',
        'Scope',
        'Serial',
      ]);
    expect(answer.text).not.toContain('BEGIN');
  });

  test('revoking a name revokes every certificate of it; the refusal names serial, name and time; again changes nothing', async () => {
    const first = (await call('POST', path, { Name: 'bot', CSR: csr })).json;
    const second = (await call('POST', path, { Name: 'bot', CSR: csr })).json;
    const other = (await call('POST', path, { Name: 'other', CSR: csr })).json;
    expect(api.tm.manager.clientCertificateRefusal(first.Serial)).toBeNull();

    const revoked = await call('DELETE', `${path}/bot`);
    expect(revoked.status).toBe(200);
    expect(revoked.json.Unconfirmed).toEqual([]);
    expect(revoked.json.Revoked.map((c: { Serial: string }) => c.Serial)).toEqual([
      first.Serial,
      second.Serial,
    ]);
    const at: string = revoked.json.Revoked[0].RevokedAt;
    expect(at).toMatch(/^\d{4}-\d\d-\d\dT/);
    expect(api.tm.manager.clientCertificateRefusal(first.Serial.toUpperCase())).toBe(
      `Permission denied: client certificate ${first.Serial} (name bot) was revoked at ${at}`,
    );
    expect(api.tm.manager.clientCertificateRefusal(other.Serial)).toBeNull();

    const again = await call('DELETE', `${path}/bot`);
    expect(again.status).toBe(200);
    expect(again.json.Revoked.map((c: { RevokedAt: string }) => c.RevokedAt)).toEqual([
      at,
      revoked.json.Revoked[1].RevokedAt,
    ]);
  });

  test('revoking a serial revokes that certificate only', async () => {
    const one = (await call('POST', path, { Name: 'pair', CSR: csr })).json;
    const two = (await call('POST', path, { Name: 'pair', CSR: csr })).json;
    const answer = await call('DELETE', `${path}/${one.Serial}`);
    expect(answer.status).toBe(200);
    expect(answer.json.Revoked.map((c: { Serial: string }) => c.Serial)).toEqual([one.Serial]);
    expect(api.tm.manager.clientCertificateRefusal(one.Serial)).not.toBeNull();
    expect(api.tm.manager.clientCertificateRefusal(two.Serial)).toBeNull();
  });

  test('revoking an unknown name or serial is 404 naming it', async () => {
    for (const ref of ['nobody', 'abcdef0123']) {
      const answer = await call('DELETE', `${path}/${ref}`);
      expect(answer.status).toBe(404);
      expect(answer.json.message).toBe(`Client certificate "${ref}" not found`);
    }
  });
});
