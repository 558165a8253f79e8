// Owner-removal requests: another owner asks, the target approves or
// declines, the requester may cancel. Decisions come from one batch call.
import { api } from '../api';
import { ask } from '../module';
import { actionMenu, h, table, when } from '../ui';
import type { Ctx } from '../app';
import type { Decision } from '../gen/module';
import type { OwnerRemovalRequests } from '../gen/api';

/** Renders the owner-removal requests page. */
export async function ownersPage(ctx: Ctx, account: string): Promise<HTMLElement> {
  const data = await api<OwnerRemovalRequests>('GET', `/v1/accounts/${encodeURIComponent(account)}/owner-removal-requests`);
  const answers = await ask(data.question);
  const names = new Map<string, string>(((data.question.facts as { users: { id: string; name: string }[] }).users ?? []).map((u) => [u.id, u.name]));
  const name = (id: string) => (id === ctx.me.id ? 'you' : names.get(id) ?? id);
  const none: Decision = { allowed: false, outcome: 'not_permitted', reasons: [{ policy: 'page', message: 'no answer' }] };
  const rows = data.requests.map((r, i) => {
    const cells = answers.cells[i] ?? [];
    const outcome = r.new_role === 'none' ? 'removal from the account' : `drop to ${r.new_role}`;
    return h(
      'tr',
      { 'data-request': r.id },
      h('td', { 'data-label': 'Owner' }, name(r.target)),
      h('td', { 'data-label': 'Asked by' }, name(r.requested_by)),
      h('td', { 'data-label': 'Asks for' }, outcome),
      h('td', { 'data-label': 'Status' }, h('span', { class: `status ${r.status}` }, r.status)),
      h('td', { 'data-label': 'Expires' }, when(r.expires_at)),
      h(
        'td',
        { class: 'actions' },
        actionMenu(`Actions for the request about ${name(r.target)}`, [
          { label: 'Approve', decision: cells[0] ?? none, run: () => ctx.change('POST', `/v1/owner-removal-requests/${r.id}/approve`, {}, `Approved: ${outcome}.`) },
          { label: 'Decline', decision: cells[1] ?? none, run: () => ctx.change('POST', `/v1/owner-removal-requests/${r.id}/decline`, {}, 'Declined.') },
          { label: 'Cancel request', decision: cells[2] ?? none, run: () => ctx.change('POST', `/v1/owner-removal-requests/${r.id}/cancel`, {}, 'The request was cancelled.') },
        ]),
      ),
    );
  });
  return h(
    'section',
    {},
    h('h1', {}, 'Owner-removal requests'),
    h('p', { class: 'help' }, 'An owner cannot be removed or demoted by another owner directly: ask with “Request owner removal…” in the Users menu; the owner approves or declines here.'),
    rows.length === 0
      ? h('p', {}, 'No requests.')
      : table({}, ['Owner', 'Asked by', 'Asks for', 'Status', 'Expires'], rows, { actions: true }),
  );
}
