/**
 * Node constraints in Docker's placement-constraint syntax (swarmkit's manager/constraint): the one
 * parser and matcher, for grants (`secret grant --node-constraint`) and for the scheduler. Pure.
 *
 *   KEY==VALUE or KEY!=VALUE, spaces around either side ignored
 *   KEY    node.id, node.hostname, node.role (manager or worker), node.labels.<label>
 *   VALUE  letters, digits and :-_.*()?+[]\^$|/ and spaces, as Docker's
 *
 * As Docker's: values compare ignoring case, a label's key keeps its case, a label the node does
 * not have is the empty value (so `node.labels.x!=y` holds on a node without `x`), and every
 * constraint of a list must hold. Unlike Docker, a key secretd cannot match (node.platform.*,
 * engine.labels.*) is refused at parse time rather than never matching.
 *
 * The stored form of a constraint is its normalized text (fixed keys lower-cased, spaces around
 * the key and value trimmed): two spellings of one constraint are the same constraint.
 */
import { invalid } from '../../errors.ts';
import { nodeConstraintCharsMax, serviceConstraintsMax } from '../../limits.ts';
import type { NodeRecord } from './types.ts';

export type ConstraintOperator = '==' | '!=';

export interface NodeConstraint {
  /** `node.id`, `node.hostname`, `node.role`, or `node.labels.<label>` (fixed part lower-cased). */
  readonly key: string;
  readonly operator: ConstraintOperator;
  readonly value: string;
}

const keyPattern = /^[a-z_][a-z0-9\-_.]+$/i;
const valuePattern = /^[a-z0-9:\-_\s.*()?+[\]\\^$|/]+$/i;
const fixedKeys = ['node.id', 'node.hostname', 'node.role'];
const labelPrefix = 'node.labels.';

/** Parses one expression; throws `invalid` naming it. */
export function parseNodeConstraint(text: unknown): NodeConstraint {
  if (typeof text !== 'string')
    throw invalid('Invalid node constraint: expected a string such as node.labels.role==db');
  const shown = JSON.stringify(text.slice(0, 80));
  if (text.length > nodeConstraintCharsMax)
    throw invalid(`Invalid node constraint ${shown}: over ${nodeConstraintCharsMax} characters`);
  for (const operator of ['==', '!='] as const) {
    const at = text.indexOf(operator);
    if (at < 0) continue;
    const rawKey = text.slice(0, at).trim();
    const value = text.slice(at + operator.length).trim();
    if (!keyPattern.test(rawKey))
      throw invalid(`Invalid node constraint ${shown}: key ${JSON.stringify(rawKey)} is invalid`);
    if (!valuePattern.test(value))
      throw invalid(
        `Invalid node constraint ${shown}: value ${JSON.stringify(value)} is invalid (letters, digits, spaces and :-_.*()?+[]\\^$|/ only)`,
      );
    return { key: normalizeKey(rawKey, shown), operator, value };
  }
  throw invalid(
    `Invalid node constraint ${shown}: expected KEY==VALUE or KEY!=VALUE (e.g. node.labels.role==db)`,
  );
}

function normalizeKey(key: string, shown: string): string {
  const lower = key.toLowerCase();
  if (fixedKeys.includes(lower)) return lower;
  if (lower.startsWith(labelPrefix) && key.length > labelPrefix.length)
    return labelPrefix + key.slice(labelPrefix.length);
  throw invalid(
    `Invalid node constraint ${shown}: unknown key ${JSON.stringify(key)} (expected node.id, node.hostname, node.role or node.labels.<label>)`,
  );
}

/** The constraint's stored text: `node.labels.role==db`. */
export function constraintText(constraint: NodeConstraint): string {
  return `${constraint.key}${constraint.operator}${constraint.value}`;
}

/** The normalized text of an expression (throws `invalid` naming a bad one). */
export function normalizeNodeConstraint(text: unknown): string {
  return constraintText(parseNodeConstraint(text));
}

/** What a constraint's key reads of a node. */
function nodeValue(node: NodeRecord, key: string): string {
  if (key === 'node.id') return node.id;
  if (key === 'node.hostname') return node.hostname;
  if (key === 'node.role') return node.role;
  return node.labels[key.slice(labelPrefix.length)] ?? '';
}

/** Whether one constraint holds on a node (values compared ignoring case, as Docker's). */
export function constraintHolds(constraint: NodeConstraint, node: NodeRecord): boolean {
  const equal = nodeValue(node, constraint.key).toLowerCase() === constraint.value.toLowerCase();
  return constraint.operator === '==' ? equal : !equal;
}

/** Whether every constraint (stored texts) holds on a node; a text that no longer parses never holds. */
export function nodeMatches(constraints: readonly string[], node: NodeRecord): boolean {
  return constraints.every((text) => {
    try {
      return constraintHolds(parseNodeConstraint(text), node);
    } catch {
      return false;
    }
  });
}

/**
 * A service's placement constraints (Docker's `Placement.Constraints`): a list of at most
 * serviceConstraintsMax expressions, each normalized, in the order given. Throws `invalid` naming
 * a bad one.
 */
export function checkServiceConstraints(value: unknown): string[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value))
    throw invalid('Invalid service spec: TaskTemplate.Placement.Constraints must be a list');
  if (value.length > serviceConstraintsMax)
    throw invalid(
      `Invalid service spec: ${value.length} placement constraints is over the limit of ${serviceConstraintsMax}`,
    );
  return value.map((text) => normalizeNodeConstraint(text));
}
