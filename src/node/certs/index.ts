/** The certs room's door: renewing node certificates (the schedule, the node's renewer, the manager's issuing) and rotating the root CA. */
export { CertRenewer, type RenewedPair, type RenewerOptions } from './renewer.ts';
export { issueRenewal, type RenewalContext, type RenewalRequest } from './issue-renewal.ts';
export { issuedAtMs, renewalBackoffMs, renewalDueMs, type Validity } from './schedule.ts';
export { certificateInForce, checkExpiryWithinCA, checkNodeCertificate } from './startup.ts';
export {
  chainPemOf,
  issuerKeyOf,
  issuerKeyOfDer,
  leafPem,
  newRotation,
  samePemSet,
  signingCAOf,
  trustBundleOf,
} from './ca-rotation.ts';
export { RootRotationDriver, type RotationDriverOptions } from './ca-rotation-driver.ts';
export { certificateReportPath, reportCertificateInUse } from './report.ts';
