/** One request through a hono app (`app.request()`), answered as status, text and the text's JSON (null when it has none). */
import type { Hono } from 'hono';

export interface AppAnswer {
  readonly status: number;
  readonly text: string;
  // Tests read whatever fields the route answers with.
  readonly json: any;
}

/** `body`: a string is sent as it is, anything else as JSON. */
export async function callApp(
  app: Hono<any>,
  method: string,
  path: string,
  body?: unknown,
): Promise<AppAnswer> {
  const init: RequestInit = { method };
  if (body !== undefined) init.body = typeof body === 'string' ? body : JSON.stringify(body);
  const response = await app.request(path, init);
  const text = await response.text();
  let json: unknown = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {}
  return { status: response.status, text, json };
}
