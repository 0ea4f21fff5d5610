/**
 * The crypto package's public door. Everything here is pure: bytes and values in, bytes and values
 * out; randomness and time are passed in (WebCrypto key generation in ca.ts is the one exception,
 * explained there).
 */
export {
  constantTimeEqual,
  envelopeKeyId,
  keyBytes,
  nonceBytes,
  open,
  seal,
  sealOverheadBytes,
  sealOverheadBytesMax,
} from './aead.ts';
export type { OpenOptions, SealOptions } from './aead.ts';
export type { Random } from './random.ts';
export { rewrapKey, unwrapKey, wrapKey, wrappedKekId, zero } from './key-wrap.ts';
export type { UnwrapKeyOptions, WrapKeyOptions, WrapLabel } from './key-wrap.ts';
export { encodeUnlockKey, parseUnlockKey, unlockKeyBytes, unlockKeyPrefix } from './unlock-key.ts';
export {
  caDigest,
  caMatchesToken,
  generateJoinToken,
  generateJoinTokens,
  joinTokenMatches,
  joinTokenPrefix,
  parseJoinToken,
} from './join-token.ts';
export type { JoinToken } from './join-token.ts';
export { idChars, newId, toHex } from './ids.ts';
export {
  caCommonName,
  createKeyAndCSR,
  createRootCA,
  issueCertificate,
  issueCertificateWithChain,
  issuerInfo,
  parseIdentity,
  roleFromOU,
  roleOU,
  verifyIssuedBy,
} from './ca.ts';
export type {
  CreateKeyAndCSROptions,
  CreateRootCAOptions,
  Identity,
  IssueCertificateOptions,
  IssuedCertificate,
  IssuerInfo,
  KeyAndCSR,
  Role,
  RootCA,
  SigningCA,
} from './ca.ts';
export { crossSignRoot } from './ca-rotation.ts';
export { loadX509 } from './_x509.ts';
export type { CrossSignRootOptions } from './ca-rotation.ts';
export { verifyChain } from './cert-chain.ts';
export type { ChainVerdict, VerifyChainOptions } from './cert-chain.ts';
export {
  certDerFromPem,
  certPemFromDer,
  csrDerFromPem,
  keyPkcs8FromPem,
  keyPkcs8ToPem,
  pemDecode,
  pemDecodeAll,
  pemEncode,
} from './pem.ts';
export type { PemLabel } from './pem.ts';
