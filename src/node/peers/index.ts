/** The peers room's door: what other parts of secretd may use of it. */
export {
  checkManagerIdentity,
  PeerClient,
  reasonOf,
  wasRefused,
  type PeerResponse,
  type PeerTls,
} from './peer-client.ts';
export { type LineHandlers, type LineStream, type PeerLink, type PeerStream } from './link.ts';
export { peerPaths } from './paths.ts';
