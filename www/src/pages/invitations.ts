// Every invitation of an account (pending, expired, accepted, revoked), with
// each row's resend and revoke answered by the module in one batch call.
// An item that does not apply to its row (outcome `inapplicable`: an
// accepted or revoked invitation) is left out of the menu; a row with
// nothing left shows the module's reason instead of a menu.
import { api } from '../api';
import { ask } from '../module';
import { actionMenu, h, reasonText, table, when, type MenuItem } from '../ui';
import type { Ctx } from '../app';
import type { Decision } from '../gen/module';
import type { Invitations } from '../gen/api';

/** Renders the Invitations page. */
export async function invitationsPage(ctx: Ctx, account: string): Promise<HTMLElement> {
  const data = await api<Invitations>('GET', `/v1/accounts/${encodeURIComponent(account)}/invitations`);
  const answers = await ask(data.question);
  // The question's targets are the listed rows, in its order.
  const targets = (data.question.targets as { invitation: string }[]).map((t) => t.invitation);
  const rows = data.invitations.map((v) => {
    const cells = answers.cells[targets.indexOf(v.id)] ?? [];
    const offered: { item: Omit<MenuItem, 'decision'>; decision: Decision | undefined }[] = [
      { item: { label: 'Resend', run: () => ctx.change('POST', `/v1/invitations/${v.id}/resend`, {}, `The invitation of ${v.email} was sent again.`) }, decision: cells[0] },
      { item: { label: 'Revoke', danger: true, run: () => ctx.change('POST', `/v1/invitations/${v.id}/revoke`, {}, `The invitation of ${v.email} was revoked.`) }, decision: cells[1] },
    ];
    // No answer is no item (fail closed); an inapplicable one is no item either.
    const items: MenuItem[] = offered.flatMap(({ item, decision }) => (decision && decision.outcome !== 'inapplicable' ? [{ ...item, decision }] : []));
    const why = [...new Set(offered.map(({ decision }) => (decision?.outcome === 'inapplicable' ? reasonText(decision.reasons) : '')).filter((r) => r))];
    const actions = items.length > 0 ? actionMenu(`Actions for the invitation of ${v.email}`, items) : h('span', { class: 'why' }, why.join('; '));
    return h(
      'tr',
      { 'data-invitation': v.id },
      h('td', { 'data-label': 'Email' }, v.email),
      h('td', { 'data-label': 'Role' }, v.role),
      h('td', { 'data-label': 'Status' }, h('span', { class: `status ${v.status}` }, v.status)),
      h('td', { 'data-label': 'Sent' }, when(v.sent_at)),
      h('td', { 'data-label': 'Expires' }, when(v.expires_at)),
      h('td', { class: items.length > 0 ? 'actions' : 'actions note' }, actions),
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
