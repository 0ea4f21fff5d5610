/**
 * GET /secretd/metrics on the compiled executable, one manager, read with curl over mutual TLS:
 * Prometheus text that counts the creates made, the stages of each, and what the store holds,
 * and never a secret's name or value.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { parseMetricsText } from '../../src/node/metrics/index.ts';
import {
  Daemon,
  freePort,
  H2Client,
  readCerts,
  requireBinary,
  secretd,
  tempDir,
  type TempDir,
} from '../helpers/process.ts';
import { curlTlsArgs } from '../helpers/client-certs.ts';

beforeAll(requireBinary);
setDefaultTimeout(120_000);

describe('GET /secretd/metrics', () => {
  let dir: TempDir;
  beforeAll(() => (dir = tempDir()));
  afterAll(() => dir[Symbol.dispose]());

  test('counts the creates made and their stages, read with curl, without names or values', async () => {
    const dataDir = join(dir.path, 'a');
    const certs = join(dir.path, 'certs');
    const port = await freePort();
    await using daemon = new Daemon([
      'init',
      '--data-dir',
      dataDir,
      '--listen-addr',
      `127.0.0.1:${port}`,
    ]);
    await daemon.waitFor(/Data directory:/);
    const issued = secretd([
      'ca',
      'issue-client',
      '--name',
      'e2e',
      '--out',
      certs,
      '--data-dir',
      dataDir,
    ]);
    expect(issued.code).toBe(0);
    const url = `https://127.0.0.1:${port}`;
    using client = new H2Client(url, readCerts(certs));
    const creates = 5;
    const value = 'metrics-e2e-value-never-shown';
    for (let i = 0; i < creates; i++) {
      const answer = await client.request('POST', '/secrets/create', {
        Name: `metrics-e2e-name-${i}`,
        Data: Buffer.from(value).toString('base64'),
        Labels: {},
      });
      expect(answer.status).toBe(201);
    }

    const curl = spawnSync('curl', [
      '--silent',
      '--show-error',
      '--fail',
      ...curlTlsArgs(certs),
      '--include',
      `${url}/secretd/metrics`,
    ]);
    const out = curl.stdout.toString();
    expect(curl.stderr.toString()).toBe('');
    expect(curl.status).toBe(0);
    expect(out).toMatch(/content-type: text\/plain; version=0\.0\.4/i);
    const text = out.slice(out.indexOf('\r\n\r\n') + 4);
    const samples = parseMetricsText(text);
    expect(samples.get('secretd_http_requests_total{route="secrets_write",status="201"}')).toBe(
      creates,
    );
    expect(samples.get('secretd_create_secret_stage_seconds_count{stage="replied"}')).toBe(creates);
    expect(
      samples.get('secretd_raft_write_stage_seconds_count{stage="applied"}'),
    ).toBeGreaterThanOrEqual(creates);
    expect(samples.get('secretd_store_objects{kind="secrets"}')).toBe(creates);
    expect(samples.get('secretd_store_objects{kind="secret_value_bytes"}')).toBe(
      creates * value.length,
    );
    expect(samples.get('secretd_raft{index="leader"}')).toBe(1);
    expect(samples.get('secretd_wal_fsync_seconds_count')).toBeGreaterThanOrEqual(creates);
    expect(samples.get('secretd_process_resident_memory_bytes')).toBeGreaterThan(0);
    expect(text).not.toContain('metrics-e2e-name');
    expect(text).not.toContain(value);
    expect(text).not.toContain(Buffer.from(value).toString('base64'));
  });
});
