/** The web console (`secretd console`): its server, for src/cmd/console.ts. */
export { startConsole, type ConsoleOptions, type RunningConsole } from './server.ts';
export type { ClusterClient, SecretSpecParser, Whoami } from './_cluster.ts';
