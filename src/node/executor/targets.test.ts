import { describe, expect, test } from 'bun:test';
import { SecretdError } from '../../errors.ts';
import { checkSecretFiles, checkSecretRefs, type SecretRef } from './targets.ts';

const ref = (target: string, extra: Partial<SecretRef> = {}): SecretRef => ({
  secretId: 'abc123',
  target,
  uid: '0',
  gid: '0',
  mode: 0o444,
  ...extra,
});

function refusal(refs: SecretRef[]): string {
  try {
    checkSecretRefs("Cannot start task 't1'", refs);
  } catch (error) {
    expect(error).toBeInstanceOf(SecretdError);
    expect((error as SecretdError).code).toBe('invalid');
    return (error as SecretdError).message;
  }
  throw new Error('expected a refusal');
}

describe('checkSecretRefs', () => {
  test('places relative targets under run/ and absolute ones under abs/ by a hash of the path', () => {
    const files = checkSecretRefs('ctx', [
      ref('db_pass', { uid: '1000', gid: '1000', mode: 0o400, version: 3 }),
      ref('app/config.yml'),
      ref('/etc/app/key.pem'),
      ref('/run/secrets/token'),
    ]);
    expect(
      files.map((f) => [f.target, f.placement.kind, f.hostName, f.uid, f.gid, f.mode, f.version]),
    ).toEqual([
      ['db_pass', 'relative', 'run/db_pass', 1000, 1000, 0o400, 3],
      ['app/config.yml', 'relative', 'run/app/config.yml', 0, 0, 0o444, null],
      [
        '/etc/app/key.pem',
        'absolute',
        expect.stringMatching(/^abs\/[0-9a-f]{16}$/),
        0,
        0,
        0o444,
        null,
      ],
      ['token', 'relative', 'run/token', 0, 0, 0o444, null],
    ]);
  });

  test('refuses targets that are empty or could escape the tmpfs', () => {
    expect(refusal([ref('')])).toBe("Cannot start task 't1': secret target '' must not be empty");
    expect(refusal([ref('../x')])).toBe(
      "Cannot start task 't1': secret target '../x' must not contain '.' or '..' components",
    );
    expect(refusal([ref('a/../../x')])).toBe(
      "Cannot start task 't1': secret target 'a/../../x' must not contain '.' or '..' components",
    );
    expect(refusal([ref('/etc/../x')])).toBe(
      "Cannot start task 't1': secret target '/etc/../x' must not contain '.' or '..' components",
    );
    expect(refusal([ref('a//b')])).toBe(
      "Cannot start task 't1': secret target 'a//b' must not contain empty components ('//' or a trailing '/')",
    );
    expect(refusal([ref('a\nb')])).toContain('must not contain control characters');
    expect(refusal([ref('x'.repeat(256))])).toContain(
      'must have components of at most 255 characters',
    );
  });

  test('refuses absolute targets on the paths the runtime owns', () => {
    expect(refusal([ref('/')])).toContain('must not contain empty components');
    for (const target of [
      '/proc',
      '/proc/self/x',
      '/sys/x',
      '/dev/null',
      '/tmp',
      '/run',
      '/run/secrets',
    ]) {
      expect(refusal([ref(target)])).toContain('is reserved');
    }
  });

  test('refuses the same target twice, also when spelled two ways', () => {
    expect(refusal([ref('db'), ref('db')])).toBe(
      "Cannot start task 't1': secret target '/run/secrets/db' is used twice",
    );
    expect(refusal([ref('db'), ref('/run/secrets/db')])).toBe(
      "Cannot start task 't1': secret target '/run/secrets/db' is used twice",
    );
  });

  test('refuses a target under another target (a file cannot be a directory)', () => {
    expect(refusal([ref('a'), ref('a/b')])).toBe(
      "Cannot start task 't1': secret target '/run/secrets/a' is a file, so '/run/secrets/a/b' cannot be under it",
    );
    expect(refusal([ref('/etc/app'), ref('/etc/app/key')])).toBe(
      "Cannot start task 't1': secret target '/etc/app' is a file, so '/etc/app/key' cannot be under it",
    );
  });

  test('refuses owners and modes Docker would fail on only at container start', () => {
    expect(refusal([ref('x', { uid: 'root' })])).toBe(
      "Cannot start task 't1': secret target 'x' has uid 'root': it must be a number from 0 to 4294967294",
    );
    expect(refusal([ref('x', { gid: '-1' })])).toContain("has gid '-1'");
    expect(refusal([ref('x', { mode: 0o4755 })])).toContain(
      'must be permission bits from 0 to 0777',
    );
    expect(refusal([ref('x', { secretId: '../id' })])).toContain('has an invalid secret id');
  });

  test('checkSecretFiles is the same rule without secret ids, as the API applies it to a spec', () => {
    const refused = (targets: string[]): string => {
      try {
        checkSecretFiles(
          'Invalid service spec',
          targets.map((target) => ({ target, uid: '0', gid: '0', mode: 0o444 })),
        );
      } catch (error) {
        return (error as SecretdError).message;
      }
      return 'accepted';
    };
    expect(refused(['/etc/../x'])).toBe(
      "Invalid service spec: secret target '/etc/../x' must not contain '.' or '..' components",
    );
    expect(refused(['/proc/self/x'])).toContain('is reserved');
    expect(refused(['db', '/run/secrets/db'])).toBe(
      "Invalid service spec: secret target '/run/secrets/db' is used twice",
    );
    expect(refused(['db', '/etc/app/key.pem'])).toBe('accepted');
  });
});
