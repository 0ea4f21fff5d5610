import { afterAll, describe, expect, test } from 'bun:test';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readUnlockKeyFile, unlockFromFile, unlockKeyFileOf } from './_key-files.ts';

const dir = mkdtempSync(join(tmpdir(), 'secretd-key-files-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const key = `SDKEY-1-${Buffer.alloc(32, 1).toString('base64').replace(/=+$/, '')}`;

function file(name: string, mode: number, uid = 0): string {
  const path = join(dir, name);
  writeFileSync(path, `${key}\n`);
  chmodSync(path, mode);
  chownSync(path, uid, 0);
  return path;
}

async function messageOf(promise: Promise<unknown>): Promise<string> {
  return promise.then(
    () => 'no error',
    (error: Error) => error.message,
  );
}

describe('readUnlockKeyFile()', () => {
  test('reads a root-owned file of mode 0600 or 0400, trimmed', async () => {
    expect(await readUnlockKeyFile(file('ok600', 0o600))).toBe(key);
    expect(await readUnlockKeyFile(file('ok400', 0o400))).toBe(key);
  });

  test('refuses a file its group or others may read or write, naming the mode', async () => {
    const path = file('g', 0o640);
    expect(await messageOf(readUnlockKeyFile(path))).toBe(
      `Not reading the unlock key from ${path}: it is readable or writable by its group or others (mode 0640; chmod 600 it)`,
    );
    expect(await messageOf(readUnlockKeyFile(file('o', 0o602)))).toContain('(mode 0602;');
  });

  test('refuses a file owned by another user, a directory and a missing file', async () => {
    const other = file('other', 0o600, 1000);
    expect(await messageOf(readUnlockKeyFile(other))).toBe(
      `Not reading the unlock key from ${other}: it is owned by uid 1000, not root (chown root: it)`,
    );
    mkdirSync(join(dir, 'd'), { mode: 0o700 });
    expect(await messageOf(readUnlockKeyFile(join(dir, 'd')))).toContain(
      'it is not a regular file',
    );
    expect(await messageOf(readUnlockKeyFile(join(dir, 'none')))).toBe(
      `Not reading the unlock key from ${join(dir, 'none')}: no such file`,
    );
  });
});

describe('unlockKeyFileOf()', () => {
  test('takes the flag first, then the systemd credential when the directory holds one', async () => {
    const creds = join(dir, 'creds');
    mkdirSync(creds);
    expect(await unlockKeyFileOf('/x', creds)).toBe('/x');
    expect(await unlockKeyFileOf(undefined, creds)).toBeNull();
    writeFileSync(join(creds, 'secretd-unlock-key'), key);
    expect(await unlockKeyFileOf(undefined, creds)).toBe(join(creds, 'secretd-unlock-key'));
    expect(await unlockKeyFileOf(undefined, undefined)).toBeNull();
    expect(await unlockKeyFileOf(undefined, '')).toBeNull();
  });
});

describe('unlockFromFile()', () => {
  const manager = (locked: boolean, accept: string) => {
    const tried: string[] = [];
    return {
      tried,
      locked,
      async unlock(text: string): Promise<void> {
        tried.push(text);
        if (text !== accept) throw new Error('Invalid unlock key');
      },
    };
  };

  test('unlocks a locked manager with the key, and says so without the key', async () => {
    const m = manager(true, key);
    const lines: string[] = [];
    await unlockFromFile(m, file('u', 0o600), undefined, (line) => lines.push(line));
    expect(m.tried).toEqual([key]);
    expect(lines).toEqual([`secretd: unlocked with the key from ${join(dir, 'u')}`]);
  });

  test('records each attempt in the audit sink: the node, the path, the outcome, never the key', async () => {
    const records: unknown[] = [];
    const m = {
      ...manager(true, 'another'),
      state: { nodeId: 'node1' },
      audit: {
        sink: {
          record: (entry: unknown) => records.push(entry),
          now: () => '2026-12-06T00:00:00.000Z',
          requestId: () => 'r1',
        },
      },
    };
    await unlockFromFile(m, file('a', 0o600), undefined, () => {});
    await unlockFromFile(m, file('a2', 0o604), undefined, () => {});
    const base = {
      at: '2026-12-06T00:00:00.000Z',
      actor: { kind: 'node', name: 'node1', role: 'manager' },
      source: 'unlock-key-file',
      action: 'unlock',
      requestId: 'r1',
    };
    expect(records).toEqual([
      { ...base, detail: `${join(dir, 'a')}: Invalid unlock key`, result: 'internal' },
      {
        ...base,
        detail:
          `${join(dir, 'a2')}: Not reading the unlock key from ${join(dir, 'a2')}: it is readable or writable by its group or others (mode 0604; chmod 600 it)`.slice(
            0,
            200,
          ),
        result: 'invalid',
      },
    ]);
    expect(JSON.stringify(records)).not.toContain(key);
  });

  test('a wrong key or a refused file leaves it locked and says why, never the key', async () => {
    const m = manager(true, 'another');
    const lines: string[] = [];
    await unlockFromFile(m, file('w', 0o600), undefined, (line) => lines.push(line));
    await unlockFromFile(m, file('w2', 0o644), undefined, (line) => lines.push(line));
    expect(m.tried).toEqual([key]);
    expect(lines).toEqual([
      `secretd: the key in ${join(dir, 'w')} did not unlock this manager: Invalid unlock key; it stays locked (run \`secretd unlock\`)`,
      `secretd: Not reading the unlock key from ${join(dir, 'w2')}: it is readable or writable by its group or others (mode 0644; chmod 600 it); this manager stays locked (run \`secretd unlock\`)`,
    ]);
    expect(lines.join('\n')).not.toContain(key);
  });

  test('does nothing for a manager that is not locked, or a worker', async () => {
    const m = manager(false, key);
    const lines: string[] = [];
    await unlockFromFile(m, file('n', 0o600), undefined, (line) => lines.push(line));
    await unlockFromFile(null, file('n2', 0o600), undefined, (line) => lines.push(line));
    expect(m.tried).toEqual([]);
    expect(lines).toEqual([
      `secretd: --unlock-key-file ${join(dir, 'n')} not needed: this manager is not locked`,
    ]);
  });
});
