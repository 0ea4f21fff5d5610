/**
 * A node's certificate at start-up: put certificates/node.pem right after a renewal a crash cut
 * short (data-dir/node-keys.ts), and refuse to start on an expired certificate. An expired node
 * cannot renew (no manager accepts its handshake) and would otherwise fail every connection
 * silently: it says so and how to recover.
 */
import { X509Certificate } from 'node:crypto';
import { parseIdentity } from '../../crypto/index.ts';
import { SecretdError } from '../../errors.ts';
import type { FileSystem } from '../../io/fs.ts';
import {
  readNodeCertificate,
  restoreNodeCertificate,
  type DataDirPaths,
} from '../data-dir/index.ts';
import { nodeCertExpiryText } from '../store/index.ts';

export async function checkNodeCertificate(
  paths: DataDirPaths,
  options: {
    readonly now: Date;
    readonly log: (line: string) => void;
    /** The data dir's disk (default: the real one). */
    readonly fs?: FileSystem;
  },
): Promise<string> {
  if (await restoreNodeCertificate(paths.nodeKeys, paths.nodeCert, options.fs))
    options.log(
      `secretd: ${paths.nodeCert} was behind the keys file (a renewal was cut short): restored from it`,
    );
  const certPem = await readNodeCertificate(paths.nodeKeys, paths.nodeCert, options.fs);
  certificateInForce(certPem, options.now);
  return certPem;
}

/** Throws, naming when it expired and what to do, unless the certificate is valid at `now`. */
export function certificateInForce(certPem: string, now: Date): void {
  const { nodeId, notAfter } = parseIdentity(certPem);
  if (notAfter.getTime() <= now.getTime())
    throw new SecretdError(
      'conflict',
      `This node's certificate expired at ${notAfter.toISOString()}; it cannot renew it: remove the node (secretd node rm --force ${nodeId}) and join it again with a fresh --data-dir`,
    );
}

/**
 * A node certificate validity setting must fit in the root CA's remaining life: a certificate is
 * cut at the CA's end anyway, and a setting past it would promise what no certificate can be.
 */
export function checkExpiryWithinCA(expiryMs: number, caCertPem: string, now: Date): number {
  const caEnd = parseCertificateEnd(caCertPem);
  const remainingMs = caEnd.getTime() - now.getTime();
  if (expiryMs > remainingMs)
    throw new SecretdError(
      'invalid',
      `Invalid certificate expiry ${nodeCertExpiryText(expiryMs)}: it is longer than the root CA's remaining life (${nodeCertExpiryText(Math.max(0, remainingMs))}, until ${caEnd.toISOString()})`,
    );
  return expiryMs;
}

function parseCertificateEnd(pem: string): Date {
  return new Date(new X509Certificate(pem).validTo);
}
