// Pending and expired invitations of an account, with resend and revoke
// pre-checked in one batch call.
import { api } from '../api';
import { ask, type Question } from '../module';
import { actionMenu, h, table, when } from '../ui';
import type { Ctx } from '../app';
import type { Decision } from '../gen/module';

interface Invitation {
  id: string;
  email: string;
  role: string;
  invited_by: string;
  sent_at: number;
  expires_at: number;
  status: string;
}

/** Renders the Invitations page. */
export async function invitationsPage(ctx: Ctx, account: string): Promise<HTMLElement> {
  const data = await api<{ invitations: Invitation[]; action_keys: string[]; question: Question }>('GET', `/v1/accounts/${encodeURIComponent(account)}/invitations`);
  const answers = await ask(data.question);
  // The question's rows are the pending ones (expired included), in its order.
  const targets = (data.question.targets as { invitation: string }[]).map((t) => t.invitation);
  const denied = (why: string): Decision => ({ allowed: false, outcome: 'not_permitted', reasons: [{ policy: 'status', message: why }] });
  const rows = data.invitations.map((v) => {
    const t = targets.indexOf(v.id);
    const cells = t >= 0 ? answers.cells[t] ?? [] : [];
    const closed = `this invitation is ${v.status}: nothing to do`;
    const menu = actionMenu(`Actions for the invitation of ${v.email}`, [
      { label: 'Resend', decision: cells[0] ?? denied(closed), run: () => ctx.change('POST', `/v1/invitations/${v.id}/resend`, {}, `The invitation of ${v.email} was sent again.`) },
      { label: 'Revoke', danger: true, decision: cells[1] ?? denied(closed), run: () => ctx.change('POST', `/v1/invitations/${v.id}/revoke`, {}, `The invitation of ${v.email} was revoked.`) },
    ]);
    return h(
      'tr',
      { 'data-invitation': v.id },
      h('td', { 'data-label': 'Email' }, v.email),
      h('td', { 'data-label': 'Role' }, v.role),
      h('td', { 'data-label': 'Status' }, h('span', { class: `status ${v.status}` }, v.status)),
      h('td', { 'data-label': 'Sent' }, when(v.sent_at)),
      h('td', { 'data-label': 'Expires' }, when(v.expires_at)),
      h('td', { class: 'actions' }, menu),
    );
  });
  return h(
    'section',
    {},
    h('h1', {}, 'Invitations'),
    rows.length === 0
      ? h('p', {}, 'No invitations yet.')
      : table({}, ['Email', 'Role', 'Status', 'Sent', 'Expires'], rows, { actions: true }),
  );
}
