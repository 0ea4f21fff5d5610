/**
 * Client certificates in e2e tests, written once: issuing one with a role through a manager's admin
 * socket (`secretd ca issue-client`), the CLI over mutual TLS with it, and curl with it.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { expect } from 'bun:test';
import { secretd, type RunResult } from './process.ts';

export interface IssueClientOptions {
  /** The certificate's name (its CN). */
  readonly name: string;
  /** Default: the CLI's (admin). */
  readonly role?: string;
  /** A writer's scope (name globs). */
  readonly scope?: readonly string[];
}

/**
 * Issues a client certificate through the admin socket of the manager at `dataDir` into `out`
 * (ca.pem, cert.pem, key.pem), checking the command's exit code, stdout and stderr; returns `out`.
 */
export function issueClientCert(dataDir: string, out: string, options: IssueClientOptions): string {
  const scope = options.scope ?? [];
  const result = secretd(
    [
      'ca',
      'issue-client',
      '--name',
      options.name,
      '--out',
      out,
      ...(options.role === undefined ? [] : ['--role', options.role]),
      ...scope.flatMap((glob) => ['--scope', glob]),
    ],
    { env: { SECRETD_DATA_DIR: dataDir } },
  );
  const scopeText = scope.length > 0 ? `, scope ${scope.join(',')}` : '';
  const facts = `client certificate for ${options.name}, role ${options.role ?? 'admin'}${scopeText}`;
  expect({ code: result.code, stderr: result.stderr }).toEqual({ code: 0, stderr: '' });
  expect(result.stdout).toMatch(
    new RegExp(
      `^Wrote .*cert\\.pem and key\\.pem \\(${escapeRegExp(facts)}, serial \\w+, expires .*\\)\\n$`,
    ),
  );
  return out;
}

/** secretd's CLI over mutual TLS to the manager at `managerAddr` with the certificate in `certs`. */
export function asClient(
  managerAddr: string,
  certs: string,
  args: readonly string[],
  input?: string,
): RunResult {
  return secretd(args, {
    env: { SECRETD_HOST: `https://${managerAddr}`, SECRETD_CERT_PATH: certs },
    ...(input === undefined ? {} : { input }),
  });
}

/** curl's options for the certificate in `certs`: the cluster's CA, the client certificate and key. */
export function curlTlsArgs(certs: string): string[] {
  return [
    '--cacert',
    join(certs, 'ca.pem'),
    '--cert',
    join(certs, 'cert.pem'),
    '--key',
    join(certs, 'key.pem'),
  ];
}

/** curl (HTTP/2, silent but for errors, at most 20 s) with the certificate in `certs`, to completion. */
export function curlWithCerts(
  certs: string,
  url: string,
  extra: readonly string[] = [],
): RunResult {
  const result = spawnSync(
    'curl',
    ['-sS', '--http2', '--max-time', '20', ...curlTlsArgs(certs), ...extra, url],
    { timeout: 30_000 },
  );
  return {
    code: result.status,
    stdout: result.stdout.toString(),
    stderr: result.stderr.toString(),
  };
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
