/**
 * How a create answer is judged, shared by both clients so that secretd and Docker are held to the
 * same rule: 201 with a non-empty string `ID`, anything else is an error with a short reason.
 */
import type { CreateOutcome } from './load.ts';

export interface HttpAnswer {
  readonly status: number;
  readonly body: string;
}

export function createOutcome(answer: HttpAnswer): CreateOutcome {
  if (answer.status !== 201)
    return { ok: false, reason: `HTTP ${answer.status}: ${firstMessage(answer.body)}` };
  try {
    const parsed: unknown = JSON.parse(answer.body);
    const id = (parsed as { ID?: unknown } | null)?.ID;
    if (typeof id === 'string' && id !== '') return { ok: true, id };
  } catch {
    // Falls through: a 201 without a usable ID is an error like any other.
  }
  return { ok: false, reason: 'HTTP 201 without an ID in the body' };
}

/** Error bodies are `{"message": …}` on both systems; keep reasons short so they group well. */
function firstMessage(body: string): string {
  try {
    const message = (JSON.parse(body) as { message?: unknown } | null)?.message;
    if (typeof message === 'string') return message.slice(0, 120);
  } catch {
    // Not JSON: show the raw start.
  }
  return body.slice(0, 120).trim() || '(empty body)';
}

/** Transport failures (refused, reset, timed out) grouped by their code. */
export function errorReason(error: unknown): string {
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    return typeof code === 'string' ? `${code}: ${error.message}` : error.message;
  }
  return String(error);
}
