/**
 * The ceiling of the one-node create figures on this machine (issue 17): what a minimal Bun program
 * does with only the transport part, driven by the same client as bench/create-secrets.ts. Two
 * servers, each a child process so that it has a core of its own as secretd does:
 *
 *   transport  `node:http2` with mutual TLS: reads the body, parses the JSON, answers 201 with an
 *              ID (DELETE: 204). No Raft, no WAL, no store.
 *   fsync      the same, and every create and delete is appended to a file and fdatasynced before
 *              its answer, with group commit (what arrives during one fdatasync shares the next),
 *              as a WAL does: the floor for a durable one-node write.
 *
 * Both run with the allocator setting a serving secretd gives itself (`allocatorEnv`).
 * Certificates come from `openssl` (a CA, a server certificate for 127.0.0.1 named `ceiling`, a client one).
 *
 *   bun bench/ceiling.ts [--n 10000] [--concurrency 1,16] [--size 64] [--mode transport,fsync]
 *                        [--start-docker]
 *
 * Prints create-secrets' table for each server, with the server's CPU time per create. With
 * `--start-docker`, each table also measures a private Docker Swarm (rounds alternating with the
 * server's, ratios below): the peer in the same run. Run it on a quiet machine, in the same hour
 * as create-secrets.ts for secretd's own figures.
 */
import { createSecureServer, type ServerHttp2Stream } from 'node:http2';
import { mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { allocatorEnv } from '../src/cmd/allocator.ts';
import { runToEnd, spawnCaptured, stopProcess } from './child-process.ts';
import {
  optionsOrExit,
  positiveInteger,
  positiveIntegers,
  readFlags,
  UsageError,
} from './create-secrets-options.ts';
import { freePort } from './secretd-process.ts';
import { certifiedSessionWindowBytes, certifiedStreamWindowBytes } from '../src/limits.ts';

type Mode = 'transport' | 'fsync';

const modes: readonly Mode[] = ['transport', 'fsync'];

const usage = `Usage: bun bench/ceiling.ts [options]

Runs bench/create-secrets.ts against minimal HTTP/2 + mutual TLS servers (no Raft, no store), each
a child process: transport (answers at once) and fsync (appends and fdatasyncs every write, with
group commit). Prints create-secrets' table for each, with the server's CPU time per create.

  --n N                  secrets created per measurement (default 10000)
  --concurrency C[,C…]   concurrent requests; one measurement per value (default 1,16)
  --size S               bytes of random data per secret (default 64)
  --mode M[,M…]          servers to measure: transport, fsync (default transport,fsync)
  --start-docker         also measure a private Docker Swarm in each table (root)

Internal: --serve MODE --port P --dir D runs one server (how this script starts its children).
`;

type CeilingOptions =
  | {
      readonly kind: 'measure';
      readonly n: string;
      readonly concurrency: string;
      readonly size: string;
      readonly modes: readonly Mode[];
      readonly startDocker: boolean;
    }
  | { readonly kind: 'serve'; readonly mode: Mode; readonly port: number; readonly dir: string };

function parseMode(option: string, text: string): Mode {
  const found = modes.find((m) => m === text);
  if (found === undefined)
    throw new UsageError(`${option} must be ${modes.join(' or ')}, not '${text}'`);
  return found;
}

/**
 * Undefined for --help. The measured counts are checked here and handed on to create-secrets.ts
 * as given.
 */
function parseOptions(argv: readonly string[]): CeilingOptions | undefined {
  const values = readFlags(argv, {
    n: { type: 'string' },
    concurrency: { type: 'string' },
    size: { type: 'string' },
    mode: { type: 'string' },
    serve: { type: 'string' },
    port: { type: 'string' },
    dir: { type: 'string' },
    'start-docker': { type: 'boolean' },
  });
  if (values === undefined) return undefined;
  if (values.serve !== undefined) {
    if (values.port === undefined || values.dir === undefined)
      throw new UsageError('--serve needs --port and --dir');
    return {
      kind: 'serve',
      mode: parseMode('--serve', values.serve),
      port: positiveInteger('--port', values.port),
      dir: values.dir,
    };
  }
  if (values.port !== undefined || values.dir !== undefined)
    throw new UsageError('--port and --dir go with --serve');
  const n = values.n ?? '10000';
  const concurrency = values.concurrency ?? '1,16';
  const size = values.size ?? '64';
  positiveInteger('--n', n);
  positiveIntegers('--concurrency', concurrency);
  positiveInteger('--size', size);
  return {
    kind: 'measure',
    n,
    concurrency,
    size,
    modes: (values.mode ?? 'transport,fsync').split(',').map((m) => parseMode('--mode', m)),
    startDocker: values['start-docker'] === true,
  };
}

const options = optionsOrExit(usage, () => parseOptions(process.argv.slice(2)));

/** The server half: `--serve MODE --port P --dir D` (certificates and the log file in D). */
async function serve(mode: Mode, port: number, dir: string): Promise<void> {
  const [key, cert, ca] = await Promise.all(
    ['server.key', 'server.crt', 'ca.crt'].map((name) => readFile(join(dir, name))),
  );
  const log = mode === 'fsync' ? await open(join(dir, 'log'), 'a') : null;
  let queued: { bytes: Uint8Array; done: () => void }[] = [];
  let syncing = false;
  const flush = async (): Promise<void> => {
    syncing = true;
    while (queued.length > 0) {
      const batch = queued;
      queued = [];
      const total = batch.reduce((sum, item) => sum + item.bytes.length, 0);
      const buffer = new Uint8Array(total);
      let at = 0;
      for (const item of batch) {
        buffer.set(item.bytes, at);
        at += item.bytes.length;
      }
      await log!.write(buffer);
      await log!.datasync();
      for (const item of batch) item.done();
    }
    syncing = false;
  };
  const durable = (bytes: Uint8Array): Promise<void> =>
    log === null
      ? Promise.resolve()
      : new Promise((resolve) => {
          queued.push({ bytes, done: resolve });
          if (!syncing) void flush();
        });
  let next = 0;
  const server = createSecureServer({
    key,
    cert,
    ca,
    requestCert: true,
    rejectUnauthorized: true,
    settings: { initialWindowSize: certifiedStreamWindowBytes },
  });
  // secretd's flow-control windows for a certified connection (src/limits.ts), so that large
  // values are compared under the same windows.
  server.on('session', (session) => session.setLocalWindowSize(certifiedSessionWindowBytes));
  server.on('stream', (stream: ServerHttp2Stream, headers) => {
    const method = headers[':method'];
    const chunks: Buffer[] = [];
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    stream.on('end', () => {
      const body = Buffer.concat(chunks);
      if (method === 'POST') {
        const parsed = JSON.parse(body.toString('utf8')) as { Name?: unknown; Data?: unknown };
        if (typeof parsed.Name !== 'string' || typeof parsed.Data !== 'string') {
          stream.respond({ ':status': 400 });
          stream.end();
          return;
        }
        const id = (next++).toString(36).padStart(25, '0');
        void durable(body).then(() => {
          stream.respond({ ':status': 201, 'content-type': 'application/json' });
          stream.end(JSON.stringify({ ID: id }));
        });
      } else if (method === 'DELETE') {
        void durable(new TextEncoder().encode(headers[':path'] ?? '')).then(() => {
          stream.respond({ ':status': 204 });
          stream.end();
        });
      } else {
        stream.respond({ ':status': 200, 'content-type': 'application/json' });
        stream.end('{}');
      }
    });
  });
  server.listen(port, '127.0.0.1', () => console.log(`ceiling ${mode} listening on ${port}`));
}

async function certificates(dir: string): Promise<void> {
  const openssl = async (...args: string[]): Promise<void> => {
    await runToEnd('openssl', args);
  };
  const at = (name: string): string => join(dir, name);
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  await openssl(
    'req',
    '-x509',
    ...ec,
    '-keyout',
    at('ca.key'),
    '-out',
    at('ca.crt'),
    '-subj',
    '/CN=ceiling-ca',
    '-days',
    '2',
  );
  for (const [name, extension] of [
    ['server', 'subjectAltName=DNS:ceiling,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n'],
    ['client', 'extendedKeyUsage=clientAuth\n'],
  ] as const) {
    await writeFile(at(`${name}.ext`), extension);
    await openssl(
      'req',
      ...ec,
      '-keyout',
      at(`${name}.key`),
      '-out',
      at(`${name}.csr`),
      '-subj',
      `/CN=${name}`,
    );
    await openssl(
      'x509',
      '-req',
      '-in',
      at(`${name}.csr`),
      '-CA',
      at('ca.crt'),
      '-CAkey',
      at('ca.key'),
      '-CAcreateserial',
      '-out',
      at(`${name}.crt`),
      '-days',
      '2',
      '-extfile',
      at(`${name}.ext`),
    );
  }
}

async function main(): Promise<void> {
  if (options.kind === 'serve') {
    await serve(options.mode, options.port, options.dir);
    return;
  }
  const dir = await mkdtemp(join(tmpdir(), 'secretd-ceiling-'));
  try {
    await certificates(dir);
    for (const mode of options.modes) {
      const port = await freePort();
      // With the allocator setting a serving secretd gives itself, so the floor is not lowered
      // by a cost secretd does not pay.
      const server = spawnCaptured(
        process.execPath,
        [import.meta.path, '--serve', mode, '--port', String(port), '--dir', dir],
        { env: allocatorEnv },
      );
      try {
        await server.waitForLine(/listening/, { timeoutMs: 10_000 });
        console.log(
          `\n== ${mode}: ${mode === 'transport' ? 'HTTP/2 + mTLS + JSON parse, nothing else' : 'the same + append and fdatasync per batch (group commit)'}`,
        );
        const out = await runToEnd(
          process.execPath,
          [
            'bench/create-secrets.ts',
            options.startDocker ? '--start-docker' : '--no-docker',
            ...(server.child.pid === undefined ? [] : ['--server-pid', String(server.child.pid)]),
            '--secretd-url',
            `https://127.0.0.1:${port}`,
            '--cacert',
            join(dir, 'ca.crt'),
            '--cert',
            join(dir, 'client.crt'),
            '--key',
            join(dir, 'client.key'),
            '--servername',
            'ceiling',
            '--n',
            options.n,
            '--concurrency',
            options.concurrency,
            '--size',
            options.size,
          ],
          { timeoutMs: 600_000 },
        );
        console.log(out.trimEnd());
      } finally {
        await stopProcess(server, 5_000);
      }
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
