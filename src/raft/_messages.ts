/** Message helper types shared by the core's modules. */
import type { Message, ReadyMessage } from './types.ts';

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

/** A message as built by the core, which fills in `from` (a snapshot message names its meta only). */
export type Outgoing = DistributiveOmit<ReadyMessage, 'from'>;

export type MessageOf<T extends Message['type']> = Extract<Message, { type: T }>;
