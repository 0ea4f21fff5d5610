/** The join room's door: what other parts of secretd may use of it. */
export { issueJoin, type JoinRequest } from './admit-joiner.ts';
export { bootstrapCluster, type InitOptions, splitHostPort } from './init-cluster.ts';
export { type JoinAnswer, joinCluster, type JoinOptions } from './join-cluster.ts';
