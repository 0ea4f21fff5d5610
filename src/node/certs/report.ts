/**
 * A node tells the managers which certificate it uses, right after it has taken a renewed one
 * into use: a POST with no body over a new mTLS connection (the peer client opens new sessions
 * with the certificate just applied), so the connection's certificate is the report. The manager
 * records which root signed it (store `node-cert-issuer`), which is what a root CA rotation
 * counts. Any manager answers; the write goes to the leader.
 */
import { SecretdError } from '../../errors.ts';
import { certRenewalTimeoutMs } from '../../limits.ts';
import { reasonOf, type PeerClient } from '../peers/index.ts';

export const certificateReportPath = '/secretd/node/certificate/report';

export async function reportCertificateInUse(
  peers: Pick<PeerClient, 'request'>,
  managers: readonly string[],
): Promise<void> {
  let last = 'no manager is known';
  for (const addr of new Set(managers)) {
    try {
      const response = await peers.request(addr, 'POST', certificateReportPath, null, {
        timeoutMs: certRenewalTimeoutMs,
      });
      if (response.status === 204 || response.status === 200) return;
      last = `${addr}: HTTP ${response.status}`;
    } catch (error) {
      last = `${addr}: ${reasonOf(error)}`;
    }
  }
  throw new SecretdError('unavailable', `No manager took the certificate report (${last})`);
}
