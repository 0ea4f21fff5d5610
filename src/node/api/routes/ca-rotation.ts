/**
 * The root CA's rotation (README, "Root CA rotation"): start one (`secretd ca rotate`; Docker's
 * form is `POST /swarm/update` with `Spec.CAConfig.ForceRotate` changed, in swarm.ts), read where
 * it stands, and a node's report of the certificate it uses now (over its own mTLS connection:
 * the connection's certificate is the report).
 */
import { Hono } from 'hono';
import { SecretdError } from '../../../errors.ts';
import { certificateReportPath } from '../../certs/index.ts';
import { allow, type AppEnv } from '../_gate.ts';
import type { Backend, RootRotationStatus } from '../backend.ts';
import { presentedCertificate } from '../peer-certificate.ts';

export function caRotationRoutes(backend: Backend): Hono<AppEnv> {
  const api = new Hono<AppEnv>();

  api.post('/secretd/ca/rotate', allow('POST /secretd/ca/rotate'), async (c) => {
    return c.json(rotationJSON(await need(backend.startRootRotation)()));
  });

  api.get('/secretd/ca/rotation', allow('GET /secretd/ca/rotation'), async (c) => {
    return c.json(rotationJSON(await need(backend.rootRotationStatus)()));
  });

  api.post(certificateReportPath, allow(`POST ${certificateReportPath}`), async (c) => {
    await need(backend.reportNodeCertificate)(
      c.get('identity'),
      presentedCertificate(c)?.der ?? null,
    );
    return c.body(null, 204);
  });

  return api;

  function need<T extends (...args: never[]) => unknown>(method: T | undefined): T {
    if (!method)
      throw new SecretdError(
        'unimplemented',
        'This node does not rotate the root CA: ask a manager',
      );
    return method.bind(backend) as T;
  }
}

export function rotationJSON(status: RootRotationStatus): object {
  return {
    InProgress: status.inProgress,
    ID: status.id,
    StartedAt: status.startedAt,
    Converged: status.converged.length,
    Total: status.converged.length + status.pending.length,
    Pending: status.pending,
  };
}
