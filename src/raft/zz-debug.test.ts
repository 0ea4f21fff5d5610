import { test } from 'bun:test';
import { Scenario } from '/tmp/random-copy.ts';
test('dbg', () => {
  const s = new Scenario(9);
  for (let i = 0; i < 400; i++) s.step();
  try { s.converge(); } catch (e) {
    console.log((e as Error).message);
    for (const m of s.net.members.values()) console.log(m.id, JSON.stringify(m.core?.status()), 'applied', m.applied.length, 'texts', m.appliedTexts().slice(-2), 'disk', m.disk.entries.length, JSON.stringify(m.disk.snapshot?.meta));
  }
});
