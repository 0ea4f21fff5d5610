import { describe, expect, test } from 'bun:test';
import { readLocalSecretRefs } from './local-containers.ts';

describe('readLocalSecretRefs', () => {
  test('parses each reference with the --secret parser', () => {
    expect(
      readLocalSecretRefs([
        { Spec: 'db_pass', Where: 'environment variable SECRETD_SECRET_DB' },
        { Spec: 'source=tls@2,target=/etc/app/key.pem,uid=999,gid=998,mode=0400' },
        { Spec: 'source=api,on-update=signal:SIGHUP' },
      ]),
    ).toEqual([
      { secret: 'db_pass', target: 'db_pass', uid: '0', gid: '0', mode: 0o444, onUpdate: 'none' },
      {
        secret: 'tls',
        version: 2,
        target: '/etc/app/key.pem',
        uid: '999',
        gid: '998',
        mode: 0o400,
        onUpdate: 'none',
      },
      { secret: 'api', target: 'api', uid: '0', gid: '0', mode: 0o444, onUpdate: 'signal:SIGHUP' },
    ]);
  });

  test('refuses a malformed reference naming where it was found, and a malformed request', () => {
    expect(() =>
      readLocalSecretRefs([
        { Spec: 'source=a,bogus=1', Where: 'environment variable SECRETD_SECRET_X' },
      ]),
    ).toThrow(
      'Cannot prepare secrets: environment variable SECRETD_SECRET_X is not a valid reference: "source=a,bogus=1": unknown field "bogus"',
    );
    expect(() =>
      readLocalSecretRefs([{ Spec: '', Where: 'annotation io.secretd.secret.y' }]),
    ).toThrow(
      'Cannot prepare secrets: annotation io.secretd.secret.y is not a valid reference: source is required',
    );
    expect(() => readLocalSecretRefs([])).toThrow('Secrets must be a list of 1 to 64 references');
    expect(() => readLocalSecretRefs([{ Secret: 'db' }])).toThrow(
      'Secrets[0] must be {"Spec": "--secret text", "Where": "…"}',
    );
  });
});
