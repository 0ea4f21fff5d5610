import { describe, expect, test } from 'bun:test';
import { checkDuplicateTargets, parseSecretFlag } from './_secret-spec.ts';

describe('--secret', () => {
  test("a bare name gets Docker's defaults: target = name, uid 0, gid 0, mode 0444", () => {
    expect(parseSecretFlag('db_pass')).toEqual({
      SecretName: 'db_pass',
      File: { Name: 'db_pass', UID: '0', GID: '0', Mode: 0o444 },
    });
  });

  test('the long form reads source (or src), target, uid, gid and an octal or decimal mode', () => {
    expect(parseSecretFlag('source=db_v2,target=db_pass,uid=1000,gid=1000,mode=0400')).toEqual({
      SecretName: 'db_v2',
      File: { Name: 'db_pass', UID: '1000', GID: '1000', Mode: 0o400 },
    });
    expect(parseSecretFlag('src=x,mode=292').File.Mode).toBe(0o444);
    expect(parseSecretFlag('src=x,target=/etc/app/key.pem').File.Name).toBe('/etc/app/key.pem');
  });

  test('bad forms are refused with the reason', () => {
    expect(() => parseSecretFlag('')).toThrow('source is required');
    expect(() => parseSecretFlag('target=x')).toThrow('source is required');
    expect(() => parseSecretFlag('source=x,colour=red')).toThrow('unknown field "colour"');
    expect(() => parseSecretFlag('source=x,mode=999')).toThrow('invalid file mode "999"');
    expect(() => parseSecretFlag('source=x,mode=0999')).toThrow('invalid file mode');
    expect(() => parseSecretFlag('source=x,mode=rw')).toThrow('invalid file mode');
  });

  test('source=NAME@N pins a version and on-update says what a running task gets; the target defaults to the name', () => {
    expect(parseSecretFlag('source=db_pass@3,target=db')).toEqual({
      SecretName: 'db_pass',
      File: { Name: 'db', UID: '0', GID: '0', Mode: 0o444 },
      Secretd: { Version: 3 },
    });
    expect(parseSecretFlag('db_pass@2').File.Name).toBe('db_pass');
    expect(parseSecretFlag('source=tls,on-update=restart').Secretd).toEqual({
      OnUpdate: 'restart',
    });
    expect(parseSecretFlag('source=tls,on-update=signal:hup').Secretd).toEqual({
      OnUpdate: 'signal:SIGHUP',
    });
    // none is the default: nothing to send, so a Docker-shaped spec stays Docker's.
    expect(parseSecretFlag('source=tls,on-update=none').Secretd).toBeUndefined();
  });

  test('bad versions, on-update values and signals are refused with the flag named', () => {
    expect(() => parseSecretFlag('source=db@0')).toThrow(
      'Invalid --secret "source=db@0": version "0": a version is a whole number from 1 to 2147483647',
    );
    expect(() => parseSecretFlag('source=db@')).toThrow('a version is a whole number');
    expect(() => parseSecretFlag('source=db@1@2')).toThrow(
      'expected source=NAME or source=NAME@VERSION',
    );
    expect(() => parseSecretFlag('source=db,on-update=reload')).toThrow(
      'Invalid --secret "source=db,on-update=reload": on-update "reload": expected none, restart or signal:SIGNAL',
    );
    expect(() => parseSecretFlag('source=db,on-update=signal:SIGKILL')).toThrow(
      'the signal must be one of SIGHUP',
    );
    expect(() => parseSecretFlag('source=db@2,on-update=restart')).toThrow(
      'a pinned version never changes, so on-update restart would never apply',
    );
  });

  test('two secrets with one target are refused', () => {
    expect(() =>
      checkDuplicateTargets([parseSecretFlag('a'), parseSecretFlag('source=b,target=a')]),
    ).toThrow('Duplicate secret target for a not allowed');
  });
});
