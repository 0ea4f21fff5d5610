/**
 * A node renews its certificate over its own mTLS connection, with no token (as Docker's
 * `issueRenewCertificate`): the connection's certificate says who asks, the body names the node
 * (which must be that one) and carries a CSR for a new key. Node certificates only, over TLS.
 */
import { Hono, type Context } from 'hono';
import { invalid } from '../../../errors.ts';
import { joinRequestBytesMax } from '../../../limits.ts';
import { peerPaths } from '../../peers/index.ts';
import { allow, type AppEnv } from '../_gate.ts';
import type { Backend } from '../backend.ts';
import { presentedCertificate } from '../peer-certificate.ts';
import { parseJsonObject, readBodyBytes } from '../request.ts';

export function certificateRoutes(backend: Backend): Hono<AppEnv> {
  const api = new Hono<AppEnv>();

  api.post(peerPaths.renewCertificate, allow(`POST ${peerPaths.renewCertificate}`), async (c) => {
    const from = c.get('identity');
    // A CSR and a node id: no more than a join request's budget.
    const body = parseJsonObject(
      await readBodyBytes(c, joinRequestBytesMax),
      'certificate renewal',
      ['NodeID', 'CSR'],
    );
    for (const field of ['NodeID', 'CSR'] as const) {
      if (typeof body[field] !== 'string' || body[field] === '')
        throw invalid(`Invalid certificate renewal: ${field} must be provided`);
    }
    const renewed = await backend.renewNodeCertificate(from, {
      nodeId: body.NodeID as string,
      csrPem: body.CSR as string,
      // None over the admin socket: refused, a node renews over its own mutual-TLS connection.
      presentedCertDer: presentedCertificate(c)?.der ?? null,
      observedIp: remoteIp(c),
    });
    return c.json({ Certificate: renewed.certPem, CA: renewed.caPem });
  });

  return api;
}

function remoteIp(c: Context<AppEnv>): string | null {
  const incoming = (c.env as { incoming?: { socket?: { remoteAddress?: string } } } | undefined)
    ?.incoming;
  return incoming?.socket?.remoteAddress ?? null;
}
