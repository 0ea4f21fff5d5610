import { describe, expect, test } from 'bun:test';
import { SecretdError } from '../../errors.ts';
import {
  canonicalKeys,
  decodeBase64Field,
  parseBoolParam,
  parseJsonObject,
  parseJsonObjectWithBase64,
  parseStrictBoolParam,
  refuseUnknownFields,
  topLevelStringRange,
  zeroedIfRefused,
} from './request.ts';

const bytes = (text: string): Uint8Array => new TextEncoder().encode(text);

describe("parseBoolParam (Docker's httputils.BoolValue, as for ?force=)", () => {
  test.each([undefined, '', '0', 'no', 'NO', 'false', 'False', 'FALSE', 'none', 'None', ' none '])(
    'reads %p as false',
    (value) => {
      expect(parseBoolParam(value)).toBe(false);
    },
  );

  test.each(['1', 'true', 'True', 'TRUE', 'yes', 'on', 'perhaps'])('reads %p as true', (value) => {
    expect(parseBoolParam(value)).toBe(true);
  });
});

describe("parseStrictBoolParam (Go's strconv.ParseBool, as Docker reads rotations, insertDefaults and status)", () => {
  test("reads Go's spellings, and absent or empty as false", () => {
    const read = (values: readonly (string | undefined)[]): boolean[] =>
      values.map((v) => parseStrictBoolParam(v, 'flag'));
    expect(read(['1', 't', 'T', 'TRUE', 'true', 'True'])).toEqual([
      true,
      true,
      true,
      true,
      true,
      true,
    ]);
    expect(read([undefined, '', '0', 'f', 'F', 'FALSE', 'false', 'False'])).toEqual([
      false,
      false,
      false,
      false,
      false,
      false,
      false,
      false,
    ]);
  });

  test.each(['perhaps', 'yes', 'tRUE', ' true'])(
    "refuses %p (400) with Docker's message",
    (value) => {
      expect(() => parseStrictBoolParam(value, 'rotateWorkerToken')).toThrow(
        new SecretdError('invalid', `invalid value for rotateWorkerToken: ${value}`),
      );
    },
  );
});

describe("canonicalKeys (Go's encoding/json key matching)", () => {
  const fields = {
    Mode: { Replicated: { Replicas: null }, Global: {} },
    Labels: null,
    Secrets: { SecretName: null },
  };

  test('renames keys to the field they name ignoring case, inside objects and lists of objects', () => {
    expect(
      canonicalKeys(
        {
          mode: { REPLICATED: { replicas: 2 } },
          secrets: [{ secretname: 'a' }, { SecretName: 'b' }],
        },
        fields,
        'spec',
      ),
    ).toEqual({
      Mode: { Replicated: { Replicas: 2 } },
      Secrets: [{ SecretName: 'a' }, { SecretName: 'b' }],
    });
  });

  test('leaves the keys of maps whose keys are data (a null leaf) as sent, and unknown keys as sent', () => {
    expect(
      canonicalKeys({ labels: { mode: 'x', Env: 'y' }, Colour: 'red' }, fields, 'spec'),
    ).toEqual({ Labels: { mode: 'x', Env: 'y' }, Colour: 'red' });
  });

  test('folds as Go does: the Kelvin sign matches k and the long s matches s; other non-ASCII letters match nothing', () => {
    expect(
      canonicalKeys(
        { '\u212aey': 1, '\u017fize': 2, Ké: 3 },
        { Key: null, Size: null, Ke: null },
        'spec',
      ),
    ).toEqual({ Key: 1, Size: 2, Ké: 3 });
  });

  test('prefers an exact match over a case-insensitive one', () => {
    expect(canonicalKeys({ name: 1, NAME: 2 }, { Name: null, name: null }, 'spec')).toEqual({
      name: 1,
      Name: 2,
    });
  });

  test('refuses two keys that name one field (400) rather than dropping one', () => {
    expect(() => canonicalKeys({ Mode: {}, mode: {} }, fields, 'service spec')).toThrow(
      new SecretdError('invalid', 'Invalid service spec: fields "Mode" and "mode" both name Mode'),
    );
  });
});

describe('refuseUnknownFields', () => {
  test('names an unknown field by its path, in lists too', () => {
    const fields = { TaskTemplate: { Secrets: { File: { Name: null } } }, Labels: null };
    expect(() =>
      refuseUnknownFields(
        {
          Labels: { anything: 'goes' },
          TaskTemplate: { Secrets: [{ File: { Name: 'a' } }, { File: { Size: 1 } }] },
        },
        fields,
        'spec',
      ),
    ).toThrow(
      new SecretdError('invalid', 'Invalid spec: unknown field TaskTemplate.Secrets.File.Size'),
    );
  });
});

describe('parseJsonObject', () => {
  test('matches the allowed field names ignoring case, and refuses what matches none', () => {
    expect(
      parseJsonObject(bytes('{"name":"db","LABELS":{"env":"prod"}}'), 'secret', [
        'Name',
        'Labels',
        'Data',
      ]),
    ).toEqual({ Name: 'db', Labels: { env: 'prod' } });
    expect(() =>
      parseJsonObject(bytes('{"Name":"db","Colour":"red"}'), 'secret', ['Name']),
    ).toThrow('Invalid secret: unknown field "Colour"');
  });

  test('with a field tree, canonicalises the objects inside too', () => {
    expect(
      parseJsonObject(bytes('{"raft":{"snapshotinterval":5}}'), 'swarm spec', {
        Raft: { SnapshotInterval: null },
      }),
    ).toEqual({ Raft: { SnapshotInterval: 5 } });
  });

  test('reads UTF-8 text as sent, after a byte order mark as before one', () => {
    const text = '{"Name":"caf\u00e9 \ud83d\udd11","Labels":{"\u00fcber":"\\ud800"}}';
    const expected = { Name: 'café 🔑', Labels: { über: '\ud800' } };
    expect(parseJsonObject(bytes(text), 'secret', ['Name', 'Labels'])).toEqual(expected);
    const withMark = new Uint8Array([0xef, 0xbb, 0xbf, ...bytes(text)]);
    expect(parseJsonObject(withMark, 'secret', ['Name', 'Labels'])).toEqual(expected);
  });

  test.each([
    ['an empty body', new Uint8Array(0), 'Invalid secret: the request body is empty'],
    ['blanks only', bytes(' \n\t '), 'Invalid secret: the request body is empty'],
    [
      'bytes that are not UTF-8',
      new Uint8Array([0x7b, 0xff, 0x7d]),
      'Invalid request: the body is not valid UTF-8',
    ],
    [
      'an encoded surrogate',
      new Uint8Array([0x22, 0xed, 0xa0, 0x80, 0x22]),
      'Invalid request: the body is not valid UTF-8',
    ],
    [
      'an overlong encoding',
      new Uint8Array([0x22, 0xc0, 0xaf, 0x22]),
      'Invalid request: the body is not valid UTF-8',
    ],
    [
      'text that is not JSON',
      bytes('{"Name":'),
      'Invalid secret: the request body is not valid JSON',
    ],
    ['a list', bytes('[{"Name":"db"}]'), 'Invalid secret: expected a JSON object'],
    ['null', bytes('null'), 'Invalid secret: expected a JSON object'],
  ])('refuses %s with a clear error', (_what, body, message) => {
    expect(() => parseJsonObject(body, 'secret', ['Name'])).toThrow(
      new SecretdError('invalid', message),
    );
  });
});

describe('parseJsonObjectWithBase64 (a large value decoded from the body bytes)', () => {
  const fields = ['Name', 'Labels', 'Data'];
  const value = new Uint8Array(6000).map((_, i) => (i * 7919) % 251);
  const big = Buffer.from(value).toString('base64');
  expect(big).toContain('/'); // so that the escaped-slash bodies below differ from the plain ones
  const pad = 'p'.repeat(5000);

  /** What the plain way answers: the fields but Data, and Data decoded, or the error's message. */
  function plain(body: Uint8Array): unknown {
    try {
      const record = parseJsonObject(body, 'secret', fields);
      const { Data, ...rest } = record;
      return { rest, data: Data == null ? Data : [...decodeBase64Field(Data, 'secret data')] };
    } catch (error) {
      return (error as Error).message;
    }
  }
  function quick(body: Uint8Array): { answer: unknown; decoded: boolean } {
    try {
      const { body: record, decoded } = parseJsonObjectWithBase64(body, 'secret', fields, 'Data');
      const { Data, ...rest } = record;
      const data = decoded ?? (Data == null ? Data : decodeBase64Field(Data, 'secret data'));
      return {
        answer: { rest, data: data == null ? data : [...data] },
        decoded: decoded !== undefined,
      };
    } catch (error) {
      return { answer: (error as Error).message, decoded: false };
    }
  }

  // [what, body, whether the quick way takes it]
  const cases: [string, Uint8Array, boolean][] = [
    ["Docker's shape", bytes(`{"Name":"db","Labels":{"a":"b"},"Data":"${big}"}`), true],
    ['keys in any case', bytes(`{"DATA":"${big}","name":"db"}`), true],
    ['blanks around', bytes(` {\n "Name" : "db" ,\t"Data"\r: "${big}" } `), true],
    ['Data also inside Labels', bytes(`{"Labels":{"Data":"x"},"Data":"${big}","Name":"db"}`), true],
    ['an empty value', bytes(`{"Name":"db","Labels":{"p":"${pad}"},"Data":""}`), true],
    ['an escape before Data', bytes(`{"Name":"d\\u0062","Data":"${big}"}`), false],
    ['an escaped key', bytes(`{"Name":"db","D\\u0061ta":"${big}"}`), false],
    [
      'slashes escaped in the value',
      bytes(`{"Name":"db","Data":"${big.replaceAll('/', '\\/')}"}`),
      false,
    ],
    ['Data twice', bytes(`{"Name":"db","Data":"${big}","data":"${big}"}`), false],
    // The same key twice: JSON.parse keeps the last, so the quick way's first must not win.
    [
      'the same key twice, the last one read',
      bytes(`{"Name":"db","Data":"${big}","Data":"${Buffer.from('other').toString('base64')}"}`),
      false,
    ],
    [
      'Data twice, the second with an escape',
      bytes(`{"Data":"${big}","d\\u0061ta":"eA=="}`),
      false,
    ],
    ['text after the object', bytes(`{"Name":"db","Data":"${big}"} x`), false],
    ['a trailing comma', bytes(`{"Name":"db","Data":"${big}",}`), false],
    ['an unknown field', bytes(`{"Name":"db","Data":"${big}","Colour":"red"}`), false],
    ['a list', bytes(`[{"Name":"db","Data":"${big}"}]`), false],
    ['an unterminated value', bytes(`{"Name":"db","Data":"${big}`), false],
    ['a value one character short', bytes(`{"Name":"db","Data":"${big.slice(1)}"}`), false],
    [
      'a blank in the value',
      bytes(`{"Name":"db","Data":"${big.slice(0, 8)} ${big.slice(9)}"}`),
      false,
    ],
    [
      'a raw tab in the value',
      bytes(`{"Name":"db","Data":"${big.slice(0, 8)}\t${big.slice(9)}"}`),
      false,
    ],
    [
      'a letter outside ASCII in the value',
      bytes(`{"Name":"db","Data":"${big.slice(0, 8)}\u00e9${big.slice(9)}"}`),
      false,
    ],
    ['a null value', bytes(`{"Name":"db","Labels":{"p":"${pad}"},"Data":null}`), false],
    ['a number for Data', bytes(`{"Name":"db","Labels":{"p":"${pad}"},"Data":12}`), false],
    ['no Data', bytes(`{"Name":"db","Labels":{"p":"${pad}"}}`), false],
    [
      'a byte order mark',
      new Uint8Array([0xef, 0xbb, 0xbf, ...bytes(`{"Name":"db","Data":"${big}"}`)]),
      false,
    ],
    [
      'bytes that are not UTF-8 in the value',
      new Uint8Array([
        ...bytes(`{"Name":"db","Data":"${big.slice(0, 8)}`),
        0xff,
        ...bytes(`${big.slice(9)}"}`),
      ]),
      false,
    ],
    [
      'bytes that are not UTF-8 after the value',
      new Uint8Array([...bytes(`{"Data":"${big}","Name":"d`), 0xff, ...bytes('"}')]),
      false,
    ],
  ];
  test.each(cases)('%s: the same answer as the plain way', (_what, body, quickly) => {
    const expected = plain(body);
    const got = quick(body);
    expect(got.answer).toEqual(expected);
    expect(got.decoded).toBe(quickly);
  });

  test('the quick way finds the top-level value only, and gives way before any escape', () => {
    const at = (text: string): string | null => {
      const range = topLevelStringRange(bytes(text), 'Data');
      return range && text.slice(range[0], range[1]);
    };
    expect(at('{"Name":"a","Data":"eA=="}')).toBe('eA==');
    expect(at('{ "data" :\n"eA==" }')).toBe('eA==');
    expect(at('{"Labels":{"Data":"x"},"Data":"eA=="}')).toBe('eA==');
    expect(at('{"Labels":{"Data":"x"}}')).toBeNull();
    expect(at('{"Labels":["Data", {"Data":"x"}],"Datum":"y"}')).toBeNull();
    expect(at('{"Name":"Data","Dat":"x"}')).toBeNull();
    expect(at('{"Name":"\\"","Data":"eA=="}')).toBeNull();
    expect(at('{"Data":null}')).toBeNull();
    expect(at('[{"Data":"eA=="}]')).toBeNull();
    expect(at('{"Data":"eA==')).toBeNull();
  });

  test('a body under 4 KiB goes the plain way', () => {
    const { body, decoded } = parseJsonObjectWithBase64(
      bytes('{"Name":"db","Data":"eA=="}'),
      'secret',
      fields,
      'Data',
    );
    expect(decoded).toBeUndefined();
    expect(body).toEqual({ Name: 'db', Data: 'eA==' });
  });
});

describe('zeroedIfRefused', () => {
  test('a value decoded with the body is zeroed when a check refuses the request, and kept when none does', () => {
    const refused = new Uint8Array([1, 2, 3]);
    expect(() =>
      zeroedIfRefused(refused, () => {
        throw new SecretdError('invalid', 'Invalid secret name');
      }),
    ).toThrow('Invalid secret name');
    expect([...refused]).toEqual([0, 0, 0]);
    const kept = new Uint8Array([4, 5, 6]);
    expect(zeroedIfRefused(kept, () => 'spec')).toBe('spec');
    expect([...kept]).toEqual([4, 5, 6]);
    expect(() =>
      zeroedIfRefused(undefined, () => {
        throw new Error('nothing decoded');
      }),
    ).toThrow('nothing decoded');
  });
});
