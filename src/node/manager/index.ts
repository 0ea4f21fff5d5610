/** The manager room's door: what other parts of secretd may use of it. */
export { Manager, type ManagerOptions } from './manager.ts';
export { systemPorts, type ManagerPorts } from './ports.ts';
