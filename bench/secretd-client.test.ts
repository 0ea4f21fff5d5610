import { describe, expect, test } from 'bun:test';
import { spawn, type ChildProcess } from 'node:child_process';
import { connect, type ClientHttp2Session } from 'node:http2';
import { closeSession } from './secretd-client.ts';

/** A plain HTTP/2 server in a process of its own (so that it can be killed), and its port. */
async function startServer(): Promise<{ child: ChildProcess; port: number }> {
  const script = `import { createServer } from 'node:http2';
const server = createServer((request, response) => { response.writeHead(201); response.end('{}'); });
server.listen(0, '127.0.0.1', () => console.log(server.address().port));`;
  const child = spawn(process.execPath, ['--eval', script], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout!.once('data', (data: Buffer) => resolve(Number(String(data).trim())));
    child.once('exit', (code) => reject(new Error(`server exited with ${code}`)));
  });
  return { child, port };
}

/** One request, to know the session is up; its status. */
function post(session: ClientHttp2Session): Promise<number> {
  return new Promise((resolve, reject) => {
    const stream = session.request({ ':method': 'POST', ':path': '/' });
    let status = 0;
    stream.on('response', (headers) => (status = Number(headers[':status'])));
    stream.on('data', () => undefined);
    stream.on('end', () => resolve(status));
    stream.on('error', reject);
    stream.end('x');
  });
}

/** 'closed', or 'hung' if the close has not settled in 10 s (it never did before the fix). */
function outcome(closing: Promise<void>): Promise<string> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const hung = new Promise<string>(
    (resolve) => (timer = setTimeout(() => resolve('hung'), 10_000)),
  );
  return Promise.race([closing.then(() => 'closed'), hung]).finally(() => clearTimeout(timer));
}

describe('closeSession', () => {
  test('settles for a session whose server was killed', async () => {
    const { child, port } = await startServer();
    const session = connect(`http://127.0.0.1:${port}`);
    session.on('error', () => undefined);
    try {
      expect(await post(session)).toBe(201);
      const gone = new Promise((resolve) => session.once('close', resolve));
      child.kill('SIGKILL');
      await gone;
      expect(session.destroyed).toBe(true);
      expect(await outcome(closeSession(session))).toBe('closed');
    } finally {
      child.kill('SIGKILL');
      session.destroy();
    }
  }, 20_000);

  test('closes a live session once its streams are done', async () => {
    const { child, port } = await startServer();
    const session = connect(`http://127.0.0.1:${port}`);
    try {
      expect(await post(session)).toBe(201);
      expect(await outcome(closeSession(session))).toBe('closed');
      expect(session.closed).toBe(true);
    } finally {
      child.kill('SIGKILL');
      session.destroy();
    }
  }, 20_000);
});
