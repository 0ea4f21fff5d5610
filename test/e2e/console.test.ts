/**
 * `secretd console` in a real browser: Debian's chromium (/usr/bin/chromium, headless, --no-sandbox
 * as root) driven by playwright-core, against the compiled binary on a real cluster (one manager
 * running a busybox service through runc, then two more managers). An admin console on the admin
 * socket and a reader's console over mutual TLS with a reader certificate. Screenshots of every
 * page go to $TMPDIR/secretd-console-screenshots/, or, with SECRETD_UPDATE_SCREENSHOTS=1, to
 * docs/console/ (where the two the README shows are committed), so a run leaves the tree clean.
 *
 * Needs root, runc, busybox-static and chromium (CI installs them).
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test';
import { request as httpRequest } from 'node:http';
import { mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { busyboxRootfsTarball } from '../helpers/busybox-image.ts';
import { Daemon, repoRoot, requireBinary, tempDir, type TempDir } from '../helpers/process.ts';
import { expectRun, idleCommand, ServiceCluster, until } from '../helpers/services.ts';

setDefaultTimeout(90_000);

const chromiumPath = '/usr/bin/chromium';
const shots =
  process.env.SECRETD_UPDATE_SCREENSHOTS === '1'
    ? join(repoRoot, 'docs', 'console')
    : join(tmpdir(), 'secretd-console-screenshots');
/** The values written through the console: none may appear in anything the browser receives or keeps. */
const values = [
  'console-first-value-4f1c9a',
  'console-second-value-88d02e',
  'console-file-value-0b7e55\n',
];
const forbidden = [...values, ...values.map((v) => Buffer.from(v).toString('base64'))];

interface Console {
  readonly daemon: Daemon;
  readonly url: string;
  readonly origin: string;
}

async function startConsole(args: readonly string[]): Promise<Console> {
  const daemon = new Daemon(['console', '--listen', '127.0.0.1:0', ...args]);
  const url = (await daemon.waitFor(/Open (http:\/\/\S+)/))[1]!;
  return { daemon, url, origin: new URL(url).origin };
}

/** Everything a page received (bodies of every response but the event stream, read as text). */
function recordResponses(page: Page, into: string[]): void {
  page.on('response', (response) => {
    if ((response.headers()['content-type'] ?? '').startsWith('text/event-stream')) return;
    into.push(`${response.url()}`);
    void response.text().then(
      (body) => into.push(body),
      () => undefined,
    );
  });
}

/** Waits until the view has been read again after `action` (the page counts its refreshes). */
async function refreshed(page: Page): Promise<void> {
  await page.waitForSelector('body[data-refreshed]');
}

/** A raw HTTP request to the console (fetch cannot set Host). */
function raw(
  url: string,
  options: { method?: string; headers?: Record<string, string>; body?: string },
): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      url,
      { method: options.method ?? 'GET', headers: options.headers },
      (res) => {
        let text = '';
        res.on('data', (chunk: Buffer) => (text += chunk.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
      },
    );
    req.on('error', reject);
    req.end(options.body);
  });
}

describe('secretd console in chromium', () => {
  let dir: TempDir;
  let cluster: ServiceCluster;
  let admin: Console;
  let reader: Console;
  let browser: Browser;
  let adminContext: BrowserContext;
  let page: Page;
  let auditPage: Page;
  const received: string[] = [];
  let events = '';
  let stopEvents: AbortController;

  beforeAll(async () => {
    requireBinary();
    mkdirSync(shots, { recursive: true });
    dir = tempDir('secretd-console-');
    cluster = await ServiceCluster.init(dir.path);
    cluster.importImage('busybox', busyboxRootfsTarball());
    const certs = join(dir.path, 'reader-certs');
    expectRun(
      cluster.manager.cli([
        'ca',
        'issue-client',
        '--name',
        'viewer',
        '--role',
        'reader',
        '--out',
        certs,
      ]),
      { stdout: /reader/ },
    );
    admin = await startConsole(['--data-dir', cluster.manager.dataDir]);
    reader = await startConsole([
      '--host',
      `https://${cluster.managerAddr}`,
      '--tlscacert',
      join(certs, 'ca.pem'),
      '--tlscert',
      join(certs, 'cert.pem'),
      '--tlskey',
      join(certs, 'key.pem'),
    ]);
    browser = await chromium.launch({
      executablePath: chromiumPath,
      headless: true,
      args: ['--no-sandbox'],
    });
    adminContext = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  });

  afterAll(async () => {
    stopEvents?.abort();
    await browser?.close();
    for (const c of [admin, reader]) {
      if (!c) continue;
      await c.daemon.kill('SIGTERM');
      // Stopped on a signal, as documented: the last line says so, and nothing went to stderr.
      expect(c.daemon.stdout).toContain('secretd console: stopped');
      expect(c.daemon.stderr).toBe('');
    }
    await cluster?.[Symbol.asyncDispose]();
    dir?.[Symbol.dispose]();
  });

  test('the token URL opens a session (HttpOnly, SameSite=Strict cookie) and the token leaves the address', async () => {
    page = await adminContext.newPage();
    recordResponses(page, received);
    await page.goto(admin.url);
    expect(page.url()).toBe(`${admin.origin}/`);
    await refreshed(page);
    expect(await page.locator('#who').textContent()).toBe('role admin · local');
    const cookies = await adminContext.cookies();
    expect(
      cookies.map((c) => ({ name: c.name, httpOnly: c.httpOnly, sameSite: c.sameSite })),
    ).toEqual([{ name: 'secretd_console', httpOnly: true, sameSite: 'Strict' }]);
    // The page's live updates, also read from outside the browser to check them for values.
    stopEvents = new AbortController();
    const listening = await fetch(`${admin.origin}/api/events`, {
      headers: { cookie: `secretd_console=${cookies[0]!.value}` },
      signal: stopEvents.signal,
    });
    expect(listening.status).toBe(200);
    void (async () => {
      const decoder = new TextDecoder();
      for await (const chunk of listening.body!) events += decoder.decode(chunk as Uint8Array);
    })().catch(() => undefined);
    auditPage = await adminContext.newPage();
    recordResponses(auditPage, received);
    await auditPage.goto(`${admin.origin}/#/audit`);
    await refreshed(auditPage);
    await auditPage.waitForSelector('#live.on');
  });

  test('a secret created in the form is listed', async () => {
    await page.goto(`${admin.origin}/#/secrets`);
    await refreshed(page);
    await page.fill('#create-secret input[name=name]', 'db_password');
    await page.fill('#create-secret input[name=labels]', 'env=prod');
    await page.fill('#create-secret textarea[name=value]', values[0]!);
    await page.click('#create-secret button[type=submit]');
    await page.waitForSelector('tr[data-secret="db_password"]');
    expect(await page.locator('#flash').textContent()).toMatch(
      /^Created secret db_password \(\w+\)$/,
    );
    // The form forgot the value once it was sent.
    expect(await page.inputValue('#create-secret textarea[name=value]')).toBe('');
    expect(await page.locator('tr[data-secret="db_password"] td').allTextContents()).toEqual([
      'db_password',
      expect.any(String),
      'env=prod',
      'v1',
      '0 tasks',
      expect.any(String),
    ]);
  });

  test('a secret created from a file chosen in the browser is listed', async () => {
    await page.fill('#create-secret input[name=name]', 'tls_key');
    await page.setInputFiles('#create-secret input[type=file]', {
      name: 'tls.key',
      mimeType: 'application/octet-stream',
      buffer: Buffer.from(values[2]!),
    });
    await page.click('#create-secret button[type=submit]');
    await page.waitForSelector('tr[data-secret="tls_key"]');
    expect(await page.locator('#flash').textContent()).toMatch(/^Created secret tls_key \(\w+\)$/);
    expect(await page.locator('#create-secret input[type=file]').inputValue()).toBe('');
  });

  test('a new version reaches the service task, and the node × version table follows it live', async () => {
    expectRun(
      cluster.manager.cli([
        'service',
        'create',
        '--name',
        'web',
        '--secret',
        'db_password',
        'busybox',
        ...idleCommand,
      ]),
      { stdout: /\w+/ },
    );
    await cluster.runningTasks('web', 1);
    await page.goto(`${admin.origin}/#/secrets/db_password`);
    const cell = (version: number): string =>
      `#node-version tr[data-node] td[data-version="${version}"]`;
    await page.waitForSelector(`${cell(1)} .badge:text("web.1")`);
    await page.fill('#add-version textarea[name=value]', values[1]!);
    await page.fill('#add-version input[name=ifVersion]', '1');
    await page.click('#add-version button[type=submit]');
    // No reload: the page follows the delivery of v2 to the task (an audit record, then the poll).
    await page.waitForSelector(`${cell(2)} .badge:text("web.1")`, { timeout: 20_000 });
    await until('v1 to be held by no task', 10_000, async () =>
      (await page.locator(`${cell(1)} .badge`).count()) === 0 ? true : undefined,
    );
    expect(await page.locator('#flash').textContent()).toBe('Added version 2 of db_password');
  });

  test('a grant from the secret page puts its node in the table, and an ungrant takes it out', async () => {
    const grantCell = '#node-version tr[data-node] td[data-version="2"] .badge:text-is("grant")';
    // No constraint: the CLI's own refusal, and nothing granted.
    await page.click('#grant-form button[type=submit]');
    await page.waitForSelector('#flash .msg.error');
    expect(await page.locator('#flash').textContent()).toBe(
      'Missing --node-constraint: say which nodes the grant is for (e.g. --node-constraint node.labels.role==db)',
    );
    // The one manager matches node.role==manager: the dispatcher pushes it the newest version.
    await page.fill('#grant-form input[name=constraints]', 'node.role==manager');
    await page.click('#grant-form button[type=submit]');
    await page.waitForSelector(
      '#flash .msg:text-is("db_password: granted to nodes where node.role==manager (the newest version)")',
    );
    await page.waitForSelector('#grants tr[data-grant="node.role==manager"]');
    await page.waitForSelector(grantCell, { timeout: 20_000 });
    expect(
      (await page.locator('#node-version td[data-version="2"] .badge').allTextContents()).sort(),
    ).toEqual(['grant', 'web.1']);
    await page.screenshot({ path: join(shots, 'secret.png'), fullPage: true });
    await page.click('button[data-ungrant="node.role==manager"]');
    await page.waitForSelector('#flash .msg:text-is("db_password: grant removed (0 left)")');
    await until('the grant to leave the table', 20_000, async () =>
      (await page.locator(grantCell).count()) === 0 ? true : undefined,
    );
    expect(await page.locator('#grants tr[data-grant]').count()).toBe(0);
  });

  test('a version added against a stale --if-version is refused with the CLI’s error', async () => {
    await page.fill('#add-version textarea[name=value]', 'never-stored');
    await page.fill('#add-version input[name=ifVersion]', '1');
    await page.click('#add-version button[type=submit]');
    await page.waitForSelector('#flash .msg.error');
    expect(await page.locator('#flash').textContent()).toBe(
      'Cannot update secret db_password: --if-version 1 is out of date (the newest version is 2)',
    );
  });

  test('the audit page shows both changes as they happen, without a reload', async () => {
    await auditPage.waitForSelector('tr[data-action="secret-create"]');
    await auditPage.waitForSelector('tr[data-action="secret-update"]');
    const actions = await auditPage
      .locator('table.audit tr[data-action]')
      .evaluateAll((rows) => rows.map((r) => r.getAttribute('data-action')));
    expect(actions).toContain('secret-deliver');
    await auditPage.click('#verify');
    await auditPage.waitForSelector('#verdict .badge');
    expect(await auditPage.locator('#verdict').textContent()).toMatch(
      /^chain verified: records 1–\d+ \(\d+\)$/,
    );
  });

  test('the audit page filters by secret and action', async () => {
    await auditPage.fill('#audit-filters input[name=secret]', 'db_password');
    await auditPage.fill('#audit-filters input[name=action]', 'secret-update');
    await auditPage.click('#audit-filters button[type=submit]');
    // The version added, and the one refused for its stale --if-version (newest first).
    const want = 'secret-update conflict,secret-update ok';
    let seen = '';
    await until('only the two updates listed', 10_000, async () => {
      seen = (
        await auditPage
          .locator('table.audit tr[data-action]')
          .evaluateAll((rows) =>
            rows.map((r) => `${r.getAttribute('data-action')} ${r.lastElementChild?.textContent}`),
          )
      ).join(',');
      return seen === want ? true : undefined;
    }).catch((error: Error) => {
      throw new Error(`${error.message}; last seen: ${seen}`);
    });
  });

  test('screenshots of every page', async () => {
    for (const view of ['cluster', 'secrets', 'services', 'audit', 'graph']) {
      await page.goto(`${admin.origin}/#/${view}`);
      await page.waitForSelector(`#view-${view}`);
      await refreshed(page);
      await page.screenshot({ path: join(shots, `${view}.png`), fullPage: true });
    }
    expect(await page.locator('#view-graph text[data-held="db_password v2"]').count()).toBe(1);
  });

  test('no secret value in the page, any response it read, its live updates or its storage', async () => {
    const kept = await page.evaluate<string>(
      'JSON.stringify({ local: { ...localStorage }, session: { ...sessionStorage }, cookie: document.cookie })',
    );
    const pages = [await page.content(), await auditPage.content()];
    const everything = [...received, ...pages, kept, events].join('\n');
    expect(received.length).toBeGreaterThan(10);
    expect(events).toContain('"secret-update"');
    expect(forbidden.filter((value) => everything.includes(value))).toEqual([]);
    expect(kept).toBe('{"local":{},"session":{},"cookie":""}');
  });

  test('a reader’s console offers no change, and a forged POST is refused 403', async () => {
    const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
    const readerPage = await context.newPage();
    await readerPage.goto(reader.url);
    await refreshed(readerPage);
    expect(await readerPage.locator('#who').textContent()).toBe('role reader · viewer');
    await readerPage.goto(`${reader.origin}/#/secrets`);
    await readerPage.waitForSelector('tr[data-secret="db_password"]');
    expect(await readerPage.locator('#create-secret').count()).toBe(0);
    await readerPage.goto(`${reader.origin}/#/secrets/db_password`);
    await readerPage.waitForSelector('#node-version');
    expect(
      await readerPage
        .locator(
          '#add-version, #remove-secret, [data-rollback], [data-remove-version], #grant-form, [data-ungrant]',
        )
        .count(),
    ).toBe(0);
    await readerPage.goto(`${reader.origin}/#/services`);
    await readerPage.waitForSelector('[data-service="web"]');
    expect(await readerPage.locator('#service-change').count()).toBe(0);
    const forged = await readerPage.evaluate(async () => {
      const who = (await (await fetch('/api/whoami')).json()) as { Csrf: string };
      const post = (headers: Record<string, string>) =>
        fetch('/api/secrets', {
          method: 'POST',
          headers: { 'content-type': 'application/json', ...headers },
          body: JSON.stringify({ Name: 'forged', Data: btoa('forged-value') }),
        }).then(async (r) => [r.status, ((await r.json()) as { message: string }).message]);
      return [await post({ 'x-csrf-token': who.Csrf }), await post({})];
    });
    expect(forged).toEqual([
      [403, 'Permission denied: role reader may not create secrets'],
      [403, 'Refused: missing or wrong CSRF token'],
    ]);
    await context.close();
  });

  test('a request without the session cookie, with a wrong Origin or for another Host is refused', async () => {
    const cookie = `secretd_console=${(await adminContext.cookies())[0]!.value}`;
    const csrf = (
      (await (await fetch(`${admin.origin}/api/whoami`, { headers: { cookie } })).json()) as {
        Csrf: string;
      }
    ).Csrf;
    const post = (headers: Record<string, string>) =>
      raw(`${admin.origin}/api/secrets`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...headers },
        body: JSON.stringify({ Name: 'sneaked', Data: btoa('sneaked-value') }),
      });
    expect(await raw(`${admin.origin}/api/workload`, {})).toEqual({
      status: 401,
      text: '{"message":"Refused: no console session (open the URL secretd console printed)"}',
    });
    expect((await raw(`${admin.origin}/`, {})).status).toBe(401);
    expect(await post({ 'x-csrf-token': csrf, origin: admin.origin })).toEqual({
      status: 401,
      text: '{"message":"Refused: no console session (open the URL secretd console printed)"}',
    });
    expect(await post({ cookie, 'x-csrf-token': csrf, origin: 'http://evil.example' })).toEqual({
      status: 403,
      text: `{"message":"Refused: Origin \\"http://evil.example\\" is not ${admin.origin}"}`,
    });
    expect(await post({ cookie, 'x-csrf-token': csrf })).toEqual({
      status: 403,
      text: `{"message":"Refused: Origin \\"\\" is not ${admin.origin}"}`,
    });
    expect(
      (await raw(`${admin.origin}/api/workload`, { headers: { cookie, host: 'evil.example' } }))
        .status,
    ).toBe(421);
    expect((await raw(`${admin.url.replace(/token=\w+/, 'token=00')}`, {})).status).toBe(401);
    // None of them created anything.
    const names = expectRun(cluster.manager.cli(['secret', 'ls', '--format', 'json']), {}).stdout;
    expect(names).not.toContain('sneaked');
    expect(names).not.toContain('forged');
    // The answers carry the strict policy.
    const answer = await fetch(`${admin.origin}/`, { headers: { cookie } });
    expect(answer.headers.get('content-security-policy')).toStartWith(
      "default-src 'self'; script-src 'self';",
    );
  });

  test('three managers: the cluster page shows each with its Raft role, one leader, its certificate end and lock; a follower forwards the holders and node-state reads', async () => {
    await cluster.joinManager('m2');
    await cluster.joinManager('m3');
    for (const name of ['m2', 'm3'])
      expectRun(cluster.node(name).cli(['image', 'import', 'busybox', busyboxRootfsTarball()]), {
        stdout: 'busybox:latest\n',
      });
    await page.goto(`${admin.origin}/#/cluster`);
    await until('three reachable managers on the page', 30_000, async () => {
      const rows = await page.locator('#managers tr:not(:first-child)').allTextContents();
      return rows.length === 3 && rows.every((r) => r.includes('reachable')) ? rows : undefined;
    });
    expect(await page.locator('#managers .badge.leader').count()).toBe(1);
    expect(await page.locator('#managers .badge.follower').count()).toBe(2);
    // Each manager's certificate end (from its dispatcher session; 90 days by default) and lock state.
    await until('a certificate end and a lock state for each manager', 30_000, async () => {
      const ends = await page.locator('#managers td[data-cert]').allTextContents();
      const locks = await page.locator('#managers td[data-lock]').allTextContents();
      return ends.length === 3 &&
        ends.every((text) => / (89|90) d$/.test(text)) &&
        locks.join(',') === 'unlocked,unlocked,unlocked'
        ? true
        : undefined;
    });
    await page.screenshot({ path: join(shots, 'cluster-three-managers.png'), fullPage: true });
    // Scaled from the services page: a task on each manager, each holding the newest version.
    await page.goto(`${admin.origin}/#/services`);
    await page.fill('#service-change input[name=service]', 'web');
    await page.fill('#service-change input[name=replicas]', '3');
    await page.click('#service-change button[data-act=scale]');
    await page.waitForSelector('#flash .msg:text("Updated service web")');
    await page.goto(`${admin.origin}/#/graph`);
    await until('each of the three nodes to hold db_password v2', 45_000, async () =>
      (await page.locator('#graph g[data-node]').count()) === 3 &&
      (await page.locator('#graph text[data-held="db_password v2"]').count()) === 3
        ? true
        : undefined,
    );
    await page.screenshot({ path: join(shots, 'graph-three-managers.png'), fullPage: true });
    // A follower's API forwards both leader reads to the leader and answers with its view.
    const roles = await Promise.all(
      ['m2', 'm3'].map(async (name) => {
        const status = await cluster.node(name).admin('GET', '/secretd/raft/status');
        return (JSON.parse(status.text) as { role: string }).role;
      }),
    );
    const follower = cluster.node(roles[0] === 'leader' ? 'm3' : 'm2');
    const holders = await follower.admin('GET', '/secretd/secrets/db_password/holders');
    expect(holders.status).toBe(200);
    expect(
      (JSON.parse(holders.text) as Array<{ By: string; Version: number }>).map(
        (h) => `${h.By} v${h.Version}`,
      ),
    ).toEqual(['task v2', 'task v2', 'task v2']);
    const states = await follower.admin('GET', '/secretd/nodes/state');
    expect(
      (JSON.parse(states.text) as Array<{ Role: string; Session: boolean; Locked: boolean }>).map(
        (n) => [n.Role, n.Session, n.Locked],
      ),
    ).toEqual([
      ['manager', true, false],
      ['manager', true, false],
      ['manager', true, false],
    ]);
  });

  test('--secret-add and --secret-rm from the services page change the service’s spec', async () => {
    await page.goto(`${admin.origin}/#/services`);
    await page.fill('#service-change input[name=service]', 'web');
    await page.fill('#service-change input[name=add]', 'source=tls_key,target=tls.key,mode=0400');
    await page.click('#service-change button[data-act=add]');
    await page.waitForSelector('[data-service="web"] .badge:text("tls_key → tls.key")');
    const spec = () =>
      JSON.parse(
        expectRun(cluster.manager.cli(['service', 'inspect', 'web']), {}).stdout,
      )[0].Spec.TaskTemplate.ContainerSpec.Secrets.map(
        (s: { SecretName: string; File: object }) => ({
          SecretName: s.SecretName,
          File: s.File,
        }),
      );
    expect(spec()).toEqual([
      { SecretName: 'db_password', File: { Name: 'db_password', UID: '0', GID: '0', Mode: 0o444 } },
      { SecretName: 'tls_key', File: { Name: 'tls.key', UID: '0', GID: '0', Mode: 0o400 } },
    ]);
    // A bad spec gets the CLI's own error and changes nothing.
    await page.fill('#service-change input[name=add]', 'source=tls_key,colour=blue');
    await page.click('#service-change button[data-act=add]');
    await page.waitForSelector('#flash .msg.error');
    expect(await page.locator('#flash').textContent()).toBe(
      'Invalid --secret "source=tls_key,colour=blue": unknown field "colour"',
    );
    await page.fill('#service-change input[name=rm]', 'tls_key');
    await page.click('#service-change button[data-act=rm]');
    await until('the badge to go', 10_000, async () =>
      (await page.locator('[data-service="web"] .badge:text("tls_key → tls.key")').count()) === 0
        ? true
        : undefined,
    );
    expect(spec()).toEqual([
      { SecretName: 'db_password', File: { Name: 'db_password', UID: '0', GID: '0', Mode: 0o444 } },
    ]);
  });

  test('a rollback and a version removal from the secret page, each followed by the table', async () => {
    await page.goto(`${admin.origin}/#/secrets/db_password`);
    await page.click('button[data-rollback="1"]');
    await page.waitForSelector('#flash .msg:text("Rolled back db_password to v1 as v3")');
    await until('every task to hold v3', 30_000, async () =>
      (await page.locator('#node-version td[data-version="3"] .badge').count()) === 3
        ? true
        : undefined,
    );
    await page.click('button[data-remove-version="2"]');
    await page.waitForSelector('#flash .msg:text("Removed v2 of db_password")');
    await until('the timeline to show v1 and v3', 10_000, async () => {
      const shown = await page.locator('#node-version th[data-version]').allTextContents();
      return shown.join(' ') === 'v1 v3 (newest)' ? true : undefined;
    });
  });
});
