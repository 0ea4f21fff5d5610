import { describe, expect, test } from 'bun:test';
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../../../test/helpers/process.ts';
import { busyboxRootfsTarball, staticBusybox } from '../../../test/helpers/busybox-image.ts';
import { SecretdError } from '../../errors.ts';
import { ImageStore, normalizeImageName } from './images.ts';
import { rejection } from '../../../test/helpers/errors.ts';

const now = (): Date => new Date('2026-01-02T03:04:05.000Z');

describe('normalizeImageName', () => {
  test('adds the latest tag only when the name has none', () => {
    expect(normalizeImageName('busybox')).toBe('busybox:latest');
    expect(normalizeImageName('busybox:1.36')).toBe('busybox:1.36');
    expect(normalizeImageName('registry:5000/team/app')).toBe('registry:5000/team/app:latest');
    expect(normalizeImageName('registry:5000/team/app:v2')).toBe('registry:5000/team/app:v2');
  });

  test('refuses names Docker would refuse, naming the rule', () => {
    for (const name of ['', 'Busybox', '../x', '.hidden', 'a b', 'x'.repeat(129)]) {
      expect(() => normalizeImageName(name)).toThrow(
        'must be 1 to 128 characters of [a-z0-9._/:-], starting with a letter or digit',
      );
    }
  });
});

describe.skipIf(staticBusybox() === null)('ImageStore', () => {
  test('imports a tarball, resolves, lists and removes it', async () => {
    using dir = tempDir('secretd-images-');
    const store = new ImageStore(dir.path, { now });
    const info = await store.importImage('team/busybox', busyboxRootfsTarball());
    expect(info).toEqual({
      name: 'team/busybox:latest',
      digest: expect.stringMatching(/^sha256:[0-9a-f]{64}$/),
      importedAt: '2026-01-02T03:04:05.000Z',
      rootfsPath: join(dir.path, 'images', 'team%2Fbusybox%3Alatest', 'rootfs'),
    });
    expect(await store.resolveImage('team/busybox')).toBe(info.rootfsPath);
    expect(await store.resolveImage('team/busybox:latest')).toBe(info.rootfsPath);
    expect(existsSync(join(info.rootfsPath, 'bin', 'busybox'))).toBe(true);
    expect(await store.listImages()).toEqual([info]);
    await store.removeImage('team/busybox');
    expect(await store.listImages()).toEqual([]);
    // Nothing left behind: no temp or removal directories.
    expect(readdirSync(join(dir.path, 'images'))).toEqual([]);
  });

  test('resolveImage() of an unknown image says how to import it', async () => {
    using dir = tempDir('secretd-images-');
    const error = await rejection(new ImageStore(dir.path).resolveImage('nope'));
    expect([error.code, error.message]).toEqual([
      'not_found',
      "Image 'nope' not found on this node: import it with `secretd image import nope ROOTFS.tar`",
    ]);
  });

  test('importImage() refuses a name in use, and a file that is not a tarball, leaving nothing behind', async () => {
    using dir = tempDir('secretd-images-');
    const store = new ImageStore(dir.path, { now });
    await store.importImage('busybox', busyboxRootfsTarball());
    const taken = await rejection(store.importImage('busybox:latest', busyboxRootfsTarball()));
    expect([taken.code, taken.message]).toEqual([
      'conflict',
      "Cannot import image 'busybox:latest': an image with this name exists: remove it first",
    ]);
    const junk = join(dir.path, 'junk.tar');
    writeFileSync(junk, 'not a tarball at all');
    const bad = await rejection(store.importImage('junk', junk));
    expect(bad.code).toBe('invalid');
    expect(bad.message).toStartWith("Cannot import image 'junk:latest': tar failed: ");
    const missing = await rejection(store.importImage('gone', join(dir.path, 'missing.tar')));
    expect([missing.code, missing.message]).toEqual([
      'invalid',
      `Cannot import image 'gone:latest': ${join(dir.path, 'missing.tar')} is not a readable file`,
    ]);
    expect(readdirSync(join(dir.path, 'images'))).toEqual(['busybox%3Alatest']);
  });
});
