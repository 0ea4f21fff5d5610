/**
 * Compose's variable interpolation in values (never in keys), as the compose spec and the docker
 * CLI do it: `$VAR`, `${VAR}`, `${VAR:-default}` (unset or empty), `${VAR-default}` (unset),
 * `${VAR:?message}` / `${VAR?message}` (required), `${VAR:+other}` / `${VAR+other}`, and `$$` for a
 * literal `$`. An unset variable without a default becomes "" with Docker's warning. Pure: the
 * environment is passed in.
 */
import { SecretdError } from '../../errors.ts';

export type Lookup = (name: string) => string | undefined;

export interface InterpolateContext {
  readonly lookup: Lookup;
  /** Names of unset variables that defaulted to "" (the caller warns once for each). */
  readonly unset: Set<string>;
}

const namePattern = /^[_a-zA-Z][_a-zA-Z0-9]*/;

/** Interpolates one string; `where` names the value in errors (e.g. services.db.image). */
export function interpolateString(
  text: string,
  where: string,
  context: InterpolateContext,
): string {
  let out = '';
  let i = 0;
  while (i < text.length) {
    const at = text.indexOf('$', i);
    if (at === -1) return out + text.slice(i);
    out += text.slice(i, at);
    const next = text[at + 1];
    if (next === '$') {
      out += '$';
      i = at + 2;
    } else if (next === '{') {
      const end = closingBrace(text, at + 2);
      if (end === -1) throw invalidTemplate(text, where);
      out += braced(text.slice(at + 2, end), text, where, context);
      i = end + 1;
    } else {
      const name = namePattern.exec(text.slice(at + 1))?.[0];
      if (name === undefined) throw invalidTemplate(text, where);
      out += valueOf(name, context);
      i = at + 1 + name.length;
    }
  }
  return out;
}

/** Interpolates every string in a parsed YAML value, keeping its shape. */
export function interpolateValue(
  value: unknown,
  where: string,
  context: InterpolateContext,
): unknown {
  if (typeof value === 'string') return interpolateString(value, where, context);
  if (Array.isArray(value))
    return value.map((item, i) => interpolateValue(item, `${where}[${i}]`, context));
  if (isMapping(value))
    return Object.fromEntries(
      Object.entries(value).map(([key, item]) => [
        key,
        interpolateValue(item, where === '' ? key : `${where}.${key}`, context),
      ]),
    );
  return value;
}

export function isMapping(value: unknown): value is Record<string, unknown> {
  return (
    typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Date)
  );
}

/** Index of the `}` closing a `${` whose body starts at `from`, allowing nested `${…}` in defaults. */
function closingBrace(text: string, from: number): number {
  let depth = 1;
  for (let i = from; i < text.length; i++) {
    if (text[i] === '$' && text[i + 1] === '{') {
      depth++;
      i++;
    } else if (text[i] === '}' && --depth === 0) return i;
  }
  return -1;
}

function braced(body: string, text: string, where: string, context: InterpolateContext): string {
  const name = namePattern.exec(body)?.[0];
  if (name === undefined) throw invalidTemplate(text, where);
  const rest = body.slice(name.length);
  const value = context.lookup(name);
  if (rest === '') return valueOf(name, context);
  const operator = /^(:-|-|:\?|\?|:\+|\+)/.exec(rest)?.[0];
  if (operator === undefined) throw invalidTemplate(text, where);
  const argument = (): string => interpolateString(rest.slice(operator.length), where, context);
  const missing = operator.startsWith(':')
    ? value === undefined || value === ''
    : value === undefined;
  switch (operator) {
    case ':-':
    case '-':
      return missing ? argument() : value!;
    case ':?':
    case '?':
      if (missing)
        throw new SecretdError(
          'invalid',
          `required variable ${name} is missing a value${rest.length > operator.length ? `: ${argument()}` : ''}`,
        );
      return value!;
    default:
      return missing ? '' : argument();
  }
}

function valueOf(name: string, context: InterpolateContext): string {
  const value = context.lookup(name);
  if (value !== undefined) return value;
  context.unset.add(name);
  return '';
}

function invalidTemplate(text: string, where: string): SecretdError {
  return new SecretdError(
    'invalid',
    `invalid interpolation format for ${where}: ${JSON.stringify(text)}. You may need to escape any $ with another $`,
  );
}
