/**
 * The dispatcher's unit tests, written once: a real store fed commands in order, a dispatcher on it
 * with quiet defaults (proposals and log lines dropped, a hand-driven clock), and a session's
 * messages read line by line as a node reads them.
 */
import type { ApplyResult, Command, Store } from '../../src/node/store/index.ts';
import { Dispatcher, type DispatcherOptions } from '../../src/node/task-dispatch/dispatcher.ts';
import type { SessionMessage } from '../../src/node/task-dispatch/messages.ts';
import { ManualTimers } from './manual-timers.ts';

/** Applies each command at the next index (1, 2, …), as Raft would; the store's result. */
export function applierOf(store: Store): (command: Command) => ApplyResult {
  let index = 0;
  return (command) => store.apply(++index, command);
}

/** An active dispatcher on `store` at time `at`; `options` replace any default. */
export function activeDispatcher(
  store: Store,
  at: string,
  options: Partial<DispatcherOptions> = {},
): Dispatcher {
  const dispatcher = new Dispatcher({
    store: () => store,
    propose: async () => {},
    timers: new ManualTimers(),
    now: () => at,
    log: () => {},
    ...options,
  });
  dispatcher.setActive(true);
  return dispatcher;
}

/**
 * A session's messages, one line of JSON each, read as they come: `next()` waits for the next one
 * (and throws once the session has ended); `onMessage` sees each before it is returned.
 */
export function sessionReader(
  stream: ReadableStream<Uint8Array>,
  onMessage: (message: SessionMessage) => void = () => {},
): { next: () => Promise<SessionMessage> } {
  const reader = stream.getReader();
  const decoder = new TextDecoder();
  let buffered = '';
  return {
    async next() {
      for (;;) {
        const newline = buffered.indexOf('\n');
        if (newline >= 0) {
          const line = buffered.slice(0, newline);
          buffered = buffered.slice(newline + 1);
          const message = JSON.parse(line) as SessionMessage;
          onMessage(message);
          return message;
        }
        const { value, done } = await reader.read();
        if (done) throw new Error('session ended');
        buffered += decoder.decode(value);
      }
    },
  };
}
