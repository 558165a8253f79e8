// The host's HTTP API, with the session's CSRF value on every change.
import { announce } from './module';
import type { Reason } from './gen/module';

/** An API error in the host's shape; denials carry the policies' reasons. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly reasons: Reason[] = [],
  ) {
    super(message);
  }
}

let csrf: string | null = null;

/** Remembers the CSRF value of this browser session. */
export function setCsrf(value: string | null): void {
  csrf = value;
}

/** Calls the API; throws [`ApiError`] on a non-2xx answer. */
export async function api<T = Record<string, unknown>>(method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = {};
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (method !== 'GET' && csrf) headers['x-csrf-token'] = csrf;
  let response: Response;
  try {
    response = await fetch(path, {
      method,
      headers,
      credentials: 'same-origin',
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, 'offline', 'the host cannot be reached: check that `gatehouse serve` is running, then try again');
  }
  announce(response.headers.get('x-gatehouse-module-sha256'));
  const json = (await response.json().catch(() => null)) as
    | (T & { error?: { code: string; message: string; reasons?: Reason[] } })
    | null;
  if (!response.ok) {
    const e = json?.error;
    throw new ApiError(response.status, e?.code ?? 'http', e?.message ?? `the host answered ${response.status}`, e?.reasons ?? []);
  }
  return json as T;
}
