import { expect, test } from 'bun:test';
import { workerCertificatePem } from '../../test/helpers/certificate.ts';
import * as door from './index.ts';

const pemOfSomeCertificate = await workerCertificatePem();

test('index.ts exports the package API and nothing private', () => {
  const functions = Object.entries(door)
    .filter(([, value]) => typeof value === 'function')
    .map(([name]) => name)
    .sort();
  expect(functions).toEqual(
    [
      'caDigest',
      'caMatchesToken',
      'certDerFromPem',
      'certPemFromDer',
      'constantTimeEqual',
      'createKeyAndCSR',
      'createRootCA',
      'crossSignRoot',
      'csrDerFromPem',
      'encodeUnlockKey',
      'envelopeKeyId',
      'generateJoinToken',
      'generateJoinTokens',
      'issueCertificate',
      'issueCertificateWithChain',
      'issuerInfo',
      'joinTokenMatches',
      'keyPkcs8FromPem',
      'keyPkcs8ToPem',
      'loadX509',
      'newId',
      'open',
      'parseIdentity',
      'parseJoinToken',
      'parseUnlockKey',
      'pemDecode',
      'pemDecodeAll',
      'pemEncode',
      'rewrapKey',
      'roleFromOU',
      'roleOU',
      'seal',
      'toHex',
      'unwrapKey',
      'verifyChain',
      'verifyIssuedBy',
      'wrapKey',
      'wrappedKekId',
      'zero',
    ].sort(),
  );
});

test('the X.509 library is loaded only by loadX509: before it, a certificate is refused as a bug, not as bad input', () => {
  // A process of its own: this one loaded the library before its tests (test/preload.ts).
  const script = `
    import { parseIdentity, loadX509 } from ${JSON.stringify(`${import.meta.dir}/index.ts`)};
    const pem = ${JSON.stringify(pemOfSomeCertificate)};
    try { parseIdentity(pem); console.log('parsed'); } catch (e) { console.log(e.code + ': ' + e.message); }
    await loadX509();
    console.log(parseIdentity(pem).nodeId);
  `;
  const run = Bun.spawnSync([process.execPath, '-e', script], { stdout: 'pipe', stderr: 'pipe' });
  expect(run.stderr.toString()).toBe('');
  expect(run.stdout.toString().trim().split('\n')).toEqual([
    'internal: X.509 used before loadX509() loaded its library',
    'node-1',
  ]);
});
