// What every page shares: who is signed in, the current account, the
// notice area and the one way to make a change.
import { api, ApiError } from './api';
import { h, problem, reasonList, say } from './ui';
import type { Reason } from './gen/module';
import type { AccountSummary, Me as ApiMe } from './gen/api';

/** The signed-in user as `GET /v1/me` returns them. */
export type Me = ApiMe;

/** One row of the account switcher. */
export type AccountRow = AccountSummary;

/** What a page is given. */
export interface Ctx {
  me: Me;
  /** Accounts the user may switch into (pre-checked by the module). */
  accounts: AccountRow[];
  /** The account in the address, if any. */
  account: string | null;
  /** The module allows this user to author policies (`author_policies`). */
  mayAuthor: boolean;
  /** Renders the current page again with fresh data. */
  refresh: () => Promise<void>;
  /**
   * Makes a change. On success shows `done` and refreshes; when the server
   * denies what the page allowed (someone changed something meanwhile),
   * shows the server's reasons and refreshes.
   */
  change: (method: string, path: string, body: unknown, done: string) => Promise<unknown>;
}

type Notice = { kind: 'ok'; text: string } | { kind: 'denied'; text: string; reasons: Reason[] };
let notice: Notice | null = null;

/** Sets the notice shown at the top of the next render. */
export function setNotice(n: Notice | null): void {
  notice = n;
  if (n) say(n.kind === 'ok' ? n.text : `${n.text} ${n.reasons.map((r) => r.message).join('; ')}`);
}

/** The notice block, shown once. */
export function noticeBlock(): HTMLElement | null {
  const n = notice;
  notice = null;
  if (!n) return null;
  if (n.kind === 'ok') return h('div', { class: 'notice ok', role: 'status' }, n.text);
  return h('div', { class: 'notice denied', role: 'alert' }, h('p', {}, n.text), reasonList(n.reasons));
}

/** Runs a change for `ctx.change`. */
export async function runChange(refresh: () => Promise<void>, method: string, path: string, body: unknown, done: string): Promise<unknown> {
  try {
    const result = await api(method, path, body);
    setNotice({ kind: 'ok', text: done });
    await refresh();
    return result;
  } catch (e) {
    if (e instanceof ApiError && e.code === 'denied') {
      setNotice({ kind: 'denied', text: 'The server refused this change; the page is refreshed with what holds now.', reasons: e.reasons });
    } else {
      setNotice({ kind: 'denied', text: e instanceof Error ? e.message : String(e), reasons: [] });
    }
    await refresh();
    return null;
  }
}

/** A page body for an error that stops a render. */
export function failed(e: unknown): HTMLElement {
  if (e instanceof ApiError) return problem(e.message, e.reasons);
  return problem(e instanceof Error ? e.message : String(e));
}
