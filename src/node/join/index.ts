/** The join room's door: what other parts of secretd may use of it. */
export { canonicalIp, issueJoin, type JoinRequest, verifiedManagerNames } from './admit-joiner.ts';
export {
  bootstrapCluster,
  initAddressNames,
  type InitOptions,
  localResources,
  splitHostPort,
} from './init-cluster.ts';
export { type JoinAnswer, joinCluster, type JoinOptions } from './join-cluster.ts';
