/** `secretd console`'s --listen parsing and the loopback test that decides the warning. */
import { describe, expect, test } from 'bun:test';
import { isLoopback, parseListen } from './console.ts';

describe('secretd console --listen', () => {
  test('parseListen() reads HOST:PORT and [IPv6]:PORT', () => {
    expect(parseListen('127.0.0.1:8080')).toEqual({ host: '127.0.0.1', port: 8080 });
    expect(parseListen('[::1]:0')).toEqual({ host: '::1', port: 0 });
    expect(parseListen('localhost:9000')).toEqual({ host: 'localhost', port: 9000 });
  });

  test('parseListen() refuses a missing port, a port over 65535 and a bare IPv6 address', () => {
    for (const bad of ['127.0.0.1', '127.0.0.1:70000', '::1:8080', ':8080', 'host:port'])
      expect(() => parseListen(bad)).toThrow(
        `Invalid --listen ${JSON.stringify(bad)}: expected HOST:PORT, e.g. 127.0.0.1:8080`,
      );
  });

  test('isLoopback() holds for 127.0.0.0/8, ::1 and localhost only', () => {
    expect(['127.0.0.1', '127.3.2.1', '::1', 'localhost'].map(isLoopback)).toEqual([
      true,
      true,
      true,
      true,
    ]);
    expect(['0.0.0.0', '10.0.0.1', '::', 'mgr.example', '128.0.0.1'].map(isLoopback)).toEqual([
      false,
      false,
      false,
      false,
      false,
    ]);
  });
});
