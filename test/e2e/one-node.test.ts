/**
 * One manager, real processes, the compiled executable: what a user does in the README, checked
 * against what must hold — acknowledged writes survive kill -9, nothing secret reaches the disk in
 * the clear, the TLS port refuses strangers.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test';
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { issueClientCert } from '../helpers/client-certs.ts';
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

beforeAll(requireBinary);
// Real processes, fsync and TLS handshakes: generous, since CI machines vary.
setDefaultTimeout(60_000);

function filesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    const stat = statSync(path);
    if (stat.isDirectory()) out.push(...filesUnder(path));
    else if (stat.isFile()) out.push(path);
  }
  return out;
}

async function startCluster(
  dataDir: string,
  extra: string[] = [],
): Promise<{ daemon: Daemon; port: number; url: string }> {
  const port = await freePort();
  const daemon = new Daemon([
    'init',
    '--data-dir',
    dataDir,
    '--listen-addr',
    `127.0.0.1:${port}`,
    ...extra,
  ]);
  await daemon.waitFor(/Data directory:/);
  return { daemon, port, url: `https://127.0.0.1:${port}` };
}

function issueClient(dataDir: string, out: string): void {
  issueClientCert(dataDir, out, { name: 'e2e' });
}

const b64 = (text: string): string => Buffer.from(text).toString('base64');

describe('one manager', () => {
  let dir: TempDir;
  beforeAll(() => (dir = tempDir()));
  afterAll(() => dir[Symbol.dispose]());

  test('acknowledged creates over HTTP/2 mTLS survive kill -9, data intact, and no plaintext is on disk', async () => {
    const dataDir = join(dir.path, 'a');
    const certs = join(dir.path, 'a-certs');
    const { daemon, url } = await startCluster(dataDir);
    expect(daemon.stdout).toContain('secretd join --token SDTKN-1-');
    issueClient(dataDir, certs);
    using client = new H2Client(url, readCerts(certs));
    await client.connected;

    const acked = new Map<string, { id: string; value: string }>();
    let next = 0;
    let killed = false;
    const total = 400;
    const worker = async (): Promise<void> => {
      while (next < total && !killed) {
        const i = next++;
        const name = `s${i}`;
        const value = `plaintext-marker-${i}-${crypto.randomUUID()}`;
        const response = await client
          .request('POST', '/secrets/create', {
            Name: name,
            Labels: { n: String(i) },
            Data: b64(value),
          })
          .catch(() => null);
        if (response?.status === 201)
          acked.set(name, { id: response.json<{ ID: string }>().ID, value });
        if (acked.size >= 150 && !killed) {
          killed = true;
          daemon.proc.kill('SIGKILL');
        }
      }
    };
    await Promise.all(Array.from({ length: 16 }, worker));
    await daemon.exited;
    expect(acked.size).toBeGreaterThanOrEqual(150);

    const restarted = new Daemon(['run', '--data-dir', dataDir]);
    await using _ = restarted;
    await restarted.waitFor(/serving the API/);
    using client2 = new H2Client(url, readCerts(certs));
    const list = await client2.request('GET', '/secrets');
    expect(list.status).toBe(200);
    const byName = new Map(
      list.json<Array<{ ID: string; Spec: { Name: string } }>>().map((s) => [s.Spec.Name, s.ID]),
    );
    for (const [name, { id }] of acked) expect(byName.get(name)).toBe(id);

    // The API never returns data; Docker's update rule (data may be sent only if unchanged) proves it intact.
    for (const [name, { value }] of [...acked].slice(0, 40)) {
      const inspect = (await client2.request('GET', `/secrets/${name}`)).json<{
        Version: { Index: number };
        Spec: { Labels: Record<string, string> };
      }>();
      const same = await client2.request(
        'POST',
        `/secrets/${name}/update?version=${inspect.Version.Index}`,
        { Name: name, Labels: inspect.Spec.Labels, Data: b64(value) },
      );
      expect(same.status).toBe(200);
      const again = (await client2.request('GET', `/secrets/${name}`)).json<{
        Version: { Index: number };
      }>();
      const different = await client2.request(
        'POST',
        `/secrets/${name}/update?version=${again.Version.Index}`,
        { Name: name, Data: b64(`${value}x`) },
      );
      expect(different.status).toBe(400);
      expect(different.json<{ message: string }>().message).toContain(
        'only updates to Labels are allowed',
      );
    }

    const files = filesUnder(dataDir);
    expect(files.some((f) => f.endsWith('.wal'))).toBe(true);
    for (const file of files) {
      const bytes = readFileSync(file);
      for (const [, { value }] of acked) {
        expect(bytes.includes(value)).toBe(false);
        expect(bytes.includes(b64(value))).toBe(false);
      }
      expect(bytes.includes('plaintext-marker-')).toBe(false);
    }
  });

  test('the TLS port refuses a client certificate from another cluster and answers one of its own', async () => {
    const mine = join(dir.path, 'b');
    const theirs = join(dir.path, 'c');
    const a = await startCluster(mine);
    await using _a = a.daemon;
    const b = await startCluster(theirs);
    await using _b = b.daemon;
    issueClient(theirs, join(dir.path, 'c-certs'));
    issueClient(mine, join(dir.path, 'b-certs'));
    const foreign = readCerts(join(dir.path, 'c-certs'));
    using stranger = new H2Client(a.url, {
      ...foreign,
      ca: readCerts(join(dir.path, 'b-certs')).ca,
    });
    // Under TLS 1.3 the client may finish its half of the handshake before the server checks the
    // certificate; the refusal then shows as a connection reset with no response.
    const refused = await stranger.request('GET', '/secrets').then(
      (response) => `answered ${response.status}`,
      () => 'refused',
    );
    expect(refused).toBe('refused');
    using friend = new H2Client(a.url, readCerts(join(dir.path, 'b-certs')));
    const ping = await friend.request('GET', '/v1.41/_ping');
    expect(ping.status).toBe(200);
    expect(ping.text).toBe('OK');
  });

  test('a corrupt WAL record before the last batch refuses to start, naming the file and offset', async () => {
    const dataDir = join(dir.path, 'd');
    const { daemon } = await startCluster(dataDir);
    for (let i = 0; i < 5; i++)
      expect(
        secretd(['secret', 'create', `c${i}`, '-', '--data-dir', dataDir], { input: `value-${i}` })
          .code,
      ).toBe(0);
    await daemon.kill('SIGKILL');
    const wal = filesUnder(dataDir)
      .filter((f) => f.endsWith('.wal'))
      .sort()[0]!;
    const bytes = readFileSync(wal);
    // A third into what was written (a kill -9 leaves the segment's preallocated zeros after it).
    const written = bytes.findLastIndex((byte) => byte !== 0) + 1;
    bytes[Math.floor(written / 3)]! ^= 0x40;
    writeFileSync(wal, bytes);
    const restarted = new Daemon(['run', '--data-dir', dataDir]);
    const code = await restarted.exited;
    expect(code).not.toBe(0);
    expect(restarted.stderr).toContain('.wal');
    expect(restarted.stderr).toMatch(/offset \d+/);
    expect(restarted.stderr).not.toContain('value-');
  });
});
