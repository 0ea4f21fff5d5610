/** The peers room's door: what other parts of secretd may use of it. */
export { checkManagerIdentity, PeerClient, reasonOf, wasRefused } from './peer-client.ts';
export { peerPaths } from './paths.ts';
