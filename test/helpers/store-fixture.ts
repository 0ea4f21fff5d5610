/** A store for the store's unit tests: one secret `db` (version 1 = "v1"), and commands applied in order. */
import { Store, toBase64, type Command } from '../../src/node/store/index.ts';

export class OneSecretStore {
  readonly store = new Store();
  /** The index the last command was applied at. */
  index = 0;

  /** `at`: the time every command of the test carries. */
  constructor(readonly at: string) {
    const data = new TextEncoder().encode('v1');
    this.apply({ op: 'secret-create', at, id: 'db', name: 'db', labels: {}, data });
  }

  /** Applies `command` at the next index. */
  apply(command: Command): ReturnType<Store['apply']> {
    return this.store.apply(++this.index, command);
  }
}
