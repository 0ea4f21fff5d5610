import { describe, expect, test } from 'bun:test';
import { statSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tempDir } from '../../test/helpers/process.ts';
import { NodeFileSystem } from './node-fs.ts';

const fs = new NodeFileSystem();
const bytes = (length: number, fill: number): Uint8Array => new Uint8Array(length).fill(fill);

describe('NodeFileSystem.openAppend with preallocateBytes', () => {
  test('extends the file a step ahead of its writes, sparsely, and close cuts it back to the data', async () => {
    using dir = tempDir('secretd-fs-');
    const path = `${dir.path}/log`;
    await fs.writeFile(path, bytes(100, 1));
    const handle = await fs.openAppend(path, { preallocateBytes: 65536 });
    await handle.write(bytes(50, 2));
    await handle.sync();
    expect(statSync(path).size).toBe(65536); // 150 written, the rest of the step reserved
    expect(statSync(path).blocks).toBeLessThanOrEqual(8); // 512-byte blocks: only the written page
    await handle.write(bytes(65400, 3)); // crosses the step: reserved up to the next one past 65550
    expect(statSync(path).size).toBe(131072);
    await handle.write(bytes(10, 4)); // inside: no change
    expect(statSync(path).size).toBe(131072);
    const open = await fs.readFile(path);
    expect(open.subarray(65560).every((b) => b === 0)).toBe(true); // zeros past the last write
    await handle.close();
    const closed = await fs.readFile(path);
    expect(closed.length).toBe(65560);
    const at = [0, 99, 100, 149, 150, 65549, 65550, 65559].map((i) => closed[i]);
    expect(at).toEqual([1, 1, 2, 2, 3, 3, 4, 4]);
  });

  test('without preallocateBytes the file grows with each write and close changes nothing', async () => {
    using dir = tempDir('secretd-fs-');
    const path = `${dir.path}/log`;
    await fs.writeFile(path, bytes(10, 1));
    const handle = await fs.openAppend(path);
    await handle.write(bytes(20, 2));
    expect(statSync(path).size).toBe(30);
    await handle.close();
    expect(statSync(path).size).toBe(30);
  });

  test('a reopened handle appends at the end close left, not past the reserved space', async () => {
    using dir = tempDir('secretd-fs-');
    const path = `${dir.path}/log`;
    await fs.writeFile(path, new Uint8Array(0));
    const first = await fs.openAppend(path, { preallocateBytes: 1024 });
    await first.write(bytes(10, 5));
    await first.close();
    const second = await fs.openAppend(path, { preallocateBytes: 1024 });
    await second.write(bytes(10, 6));
    await second.close();
    expect([...(await fs.readFile(path))]).toEqual([...bytes(10, 5), ...bytes(10, 6)]);
  });
});

describe('NodeFileSystem.mapFile', () => {
  test("gives readFile's bytes, for an empty file too, and readFile's error for a missing one", async () => {
    using dir = tempDir('secretd-fs-');
    const data = new Uint8Array(3 * 4096 + 17).map((_, i) => i % 251);
    await fs.writeFile(`${dir.path}/data`, data);
    await fs.writeFile(`${dir.path}/empty`, new Uint8Array(0));
    expect(await fs.mapFile(`${dir.path}/data`)).toEqual(data);
    expect(await fs.mapFile(`${dir.path}/empty`)).toEqual(new Uint8Array(0));
    const missing = await fs
      .mapFile(`${dir.path}/missing`)
      .catch((e: NodeJS.ErrnoException) => e.code);
    expect(missing).toBe('ENOENT');
  });

  test('maps the file under Bun: a byte written to the file afterwards shows through', async () => {
    using dir = tempDir('secretd-fs-');
    const path = `${dir.path}/data`;
    await fs.writeFile(path, bytes(8192, 1));
    const mapped = await fs.mapFile(path);
    const handle = await open(path, 'r+');
    await handle.write(Uint8Array.of(7), 0, 1, 4096);
    await handle.close();
    expect([mapped[4095], mapped[4096], mapped[4097]]).toEqual([1, 7, 1]); // a read copy would keep 1
  });
});
