import { expect, test } from 'bun:test';
import * as door from './index.ts';

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
