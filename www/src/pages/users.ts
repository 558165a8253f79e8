// The Users page of an account: members with a ⋮ menu of every action that
// applies to them, one page at a time (the API pages members in user id
// order; "Show more members" loads the next page). Each page's menus come
// from one batch call into the page's module on that page's question; what
// applies is the module's answer too.
import { api } from '../api';
import { ask } from '../module';
import { actionMenu, dialog, h, reasonText, say, table, type MenuItem } from '../ui';
import type { Ctx } from '../app';
import type { Decision } from '../gen/module';
import type { Invitations, Members } from '../gen/api';
import { inviteDialog } from './invite';

const ROLES = ['owner', 'admin', 'standard', 'basic'] as const;
/** Whether an item belongs in a menu: the module did not find it inapplicable to its target. */
const applies = (d: Decision): boolean => d.outcome !== 'inapplicable';
/** What an owner-removal request may ask for: a lower role, or removal. */
const DROP_TO = ['admin', 'standard', 'basic', 'none'] as const;
/** Pages shown per account, so a render after a change shows as many again. */
const pagesShown = new Map<string, number>();

/** Renders the Users page. */
export async function usersPage(ctx: Ctx, account: string): Promise<HTMLElement> {
  const base = `/v1/accounts/${encodeURIComponent(account)}`;
  const fetchPage = (after: string | null): Promise<Members> => api<Members>('GET', `${base}/members${after === null ? '' : `?after=${encodeURIComponent(after)}`}`);
  const [first, invitations] = await Promise.all([
    fetchPage(null),
    api<Invitations>('GET', `${base}/invitations`).catch(() => ({ invitations: [] as Invitations['invitations'] })),
  ]);
  const acc = first.account;
  const memberRows = async (data: Members): Promise<HTMLElement[]> => rowsOf(ctx, base, acc.name, data, (await ask(data.question)).cells);

  let shown = await memberRows(first);
  let next = first.next;
  let pages = 1;
  // After a change, show as many pages as before it (each decided on its own question).
  while (next !== null && pages < (pagesShown.get(account) ?? 1)) {
    const data = await fetchPage(next);
    shown = [...shown, ...(await memberRows(data))];
    next = data.next;
    pages += 1;
  }
  pagesShown.set(account, pages);

  const invited = invitations.invitations
    .filter((v) => v.status === 'pending' || v.status === 'expired')
    .map((v) =>
      h(
        'tr',
        { class: 'invited' },
        h('td', { 'data-label': 'Name' }, h('span', { class: 'name muted' }, '(invited)')),
        h('td', { 'data-label': 'Email' }, v.email),
        h('td', { 'data-label': 'Role' }, v.role),
        h('td', { 'data-label': 'Status' }, h('span', { class: `status ${v.status}` }, v.status === 'pending' ? 'invited' : 'expired')),
        h('td', { class: 'actions' }, h('a', { href: `#/a/${account}/invitations` }, 'Manage')),
      ),
    );
  const users = table({ class: 'users' }, ['Name', 'Email', 'Role', 'Status'], [...shown, ...invited], { actions: true, caption: `Members of ${acc.name} and their actions` });

  let count = shown.length;
  const showing = (): string => `Showing ${count} of ${first.total} members`;
  const status = h('p', { class: 'paging-status', 'data-testid': 'paging', tabindex: -1 }, showing());
  const more = h('button', { type: 'button', class: 'more' }, 'Show more members');
  more.addEventListener('click', () => {
    const after = next;
    if (after === null) return;
    more.disabled = true;
    more.textContent = 'Loading…';
    void (async () => {
      try {
        const data = await fetchPage(after);
        const rows = await memberRows(data);
        // New members go after the members shown, before the invitations.
        const body = users.tBodies[0]!;
        const firstInvited = body.querySelector('tr.invited');
        for (const r of rows) body.insertBefore(r, firstInvited);
        count += rows.length;
        next = data.next;
        pagesShown.set(account, (pagesShown.get(account) ?? 1) + 1);
        status.textContent = showing();
        say(`${rows.length} more members shown. ${showing()}.`);
      } catch (e) {
        say(`Could not load more members: ${e instanceof Error ? e.message : String(e)}`);
      }
      more.disabled = false;
      more.textContent = 'Show more members';
      if (next === null) {
        more.remove();
        status.focus();
      }
    })();
  });

  return h(
    'section',
    { 'aria-labelledby': 'users-title' },
    h(
      'div',
      { class: 'page-head' },
      h('h1', { id: 'users-title' }, `Users of ${acc.name}`),
      h('p', { class: 'seats', 'data-testid': 'seats' }, `Seats: ${first.seats.in_use} used of ${first.seats.total}`),
      h('button', { type: 'button', class: 'primary', onclick: () => void inviteDialog(ctx, account) }, 'Invite users'),
    ),
    users,
    h('div', { class: 'paging' }, status, next === null ? null : more),
  );
}

/** The table rows of one page of members; `answers` are its question's cells. */
function rowsOf(ctx: Ctx, base: string, accountName: string, data: Members, answers: Decision[][]): HTMLElement[] {
  const at = (cells: Decision[], key: string): Decision => {
    const i = data.action_keys.indexOf(key);
    return cells[i] ?? { allowed: false, outcome: 'error', reasons: [{ policy: 'page', message: `the module gave no answer for ${key}` }] };
  };
  return data.members.map((m, i) => {
    const cells = answers[i] ?? [];
    const who = m.name ?? m.user;
    const member = `${base}/members/${encodeURIComponent(m.user)}`;
    const self = m.user === ctx.me.id;
    // Every item the row's cells answer; the module decides which apply to
    // this member as they stand (its own role, its status's opposite, an
    // owner removal of a non-owner, stepping down or leaving for someone
    // else are `inapplicable`) and those are left out. A denied item that
    // applies stays, disabled with its reasons.
    const removal = DROP_TO.map((r) => ({ role: r, decision: at(cells, `request_owner_removal:${r}`) })).filter((c) => applies(c.decision));
    const offered: MenuItem[] = [
      {
        label: 'Edit nickname…',
        decision: at(cells, 'edit_nickname'),
        run: () => nicknameDialog(ctx, member, who, m.nickname),
      },
      ...ROLES.map((r) => ({
        label: `Make ${r}`,
        decision: at(cells, `change_role:${r}`),
        run: () => ctx.change('PUT', `${member}/role`, { role: r }, `${who} is now ${r} of ${accountName}.`),
      })),
      { label: 'Suspend', decision: at(cells, 'suspend'), run: () => ctx.change('POST', `${member}/suspend`, {}, `${who} is suspended.`) },
      { label: 'Unsuspend', decision: at(cells, 'unsuspend'), run: () => ctx.change('POST', `${member}/unsuspend`, {}, `${who} is active again.`) },
      ...(removal.length > 0
        ? [
            {
              label: 'Request owner removal…',
              decision: removal.find((c) => c.decision.allowed)?.decision ?? removal[0]!.decision,
              run: () => ownerRemovalDialog(ctx, base, m.user, who, removal),
            },
          ]
        : []),
      { label: 'Step down to admin', decision: at(cells, 'step_down:admin'), run: () => ctx.change('POST', `${base}/step-down`, { role: 'admin' }, 'You stepped down to admin.') },
      { label: 'Leave this account', danger: true, decision: at(cells, 'leave'), run: () => confirmThen(`Leave ${accountName}?`, () => ctx.change('POST', `${base}/leave`, {}, `You left ${accountName}.`)) },
      {
        label: 'Remove from account',
        danger: true,
        decision: at(cells, 'remove_member'),
        run: () => confirmThen(`Remove ${who} from ${accountName}?`, () => ctx.change('DELETE', member, undefined, `${who} was removed from ${accountName}.`)),
      },
    ];
    const items = offered.filter((item) => applies(item.decision));
    return h(
      'tr',
      { 'data-user': m.user },
      h('td', { 'data-label': 'Name' }, h('span', { class: 'name' }, who), m.nickname ? h('span', { class: 'nick' }, ` “${m.nickname}”`) : null, self ? h('span', { class: 'tag' }, 'you') : null),
      h('td', { 'data-label': 'Email' }, m.email ?? ''),
      h('td', { 'data-label': 'Role' }, m.role, m.managed_by_idp ? h('span', { class: 'tag' }, 'SSO') : null),
      h('td', { 'data-label': 'Status' }, h('span', { class: `status ${m.status}` }, m.status)),
      h('td', { class: 'actions' }, actionMenu(`Actions for ${who}`, items)),
    );
  });
}

function confirmThen(question: string, then: () => Promise<unknown>): void {
  dialog(question, (close) =>
    h(
      'form',
      { method: 'dialog', onsubmit: (e: Event) => { e.preventDefault(); close(); void then(); } },
      h('div', { class: 'buttons' }, h('button', { type: 'button', onclick: close }, 'Cancel'), h('button', { type: 'submit', class: 'danger' }, 'Confirm')),
    ),
  );
}

function ownerRemovalDialog(ctx: Ctx, base: string, user: string, who: string, choices: { role: string; decision: Decision }[]): void {
  dialog(`Ask ${who} to give up the owner role`, (close) => {
    const options = choices.map((c, i) => {
      const id = `drop-${c.role}`;
      const input = h('input', { type: 'radio', name: 'drop', id, value: c.role, disabled: !c.decision.allowed, 'aria-describedby': c.decision.allowed ? null : `${id}-why` });
      if (i === choices.findIndex((x) => x.decision.allowed)) input.checked = true;
      return h(
        'div',
        { class: 'check' },
        input,
        h('label', { for: id }, c.role === 'none' ? 'remove them from the account' : `drop to ${c.role}`),
        c.decision.allowed ? null : h('span', { class: 'why', id: `${id}-why` }, reasonText(c.decision.reasons)),
      );
    });
    return h(
      'form',
      {
        onsubmit: (e: Event) => {
          e.preventDefault();
          const role = (new FormData(e.target as HTMLFormElement).get('drop') as string | null) ?? '';
          close();
          const what = role === 'none' ? 'their removal' : `dropping to ${role}`;
          void ctx.change('POST', `${base}/owner-removal-requests`, { target: user, new_role: role }, `Asked ${who} to approve ${what}.`);
        },
      },
      h('p', { class: 'help' }, `${who} approves or declines the request on the Owner removal page; it expires if they do neither.`),
      h('fieldset', {}, h('legend', {}, 'What the request asks for'), ...options),
      h('div', { class: 'buttons' }, h('button', { type: 'button', onclick: close }, 'Cancel'), h('button', { type: 'submit', class: 'primary' }, 'Send request')),
    );
  });
}

function nicknameDialog(ctx: Ctx, member: string, who: string, current: string | null): void {
  dialog(`Nickname of ${who}`, (close) => {
    const input = h('input', { name: 'nickname', value: current ?? '', maxlength: 64, 'aria-label': 'Nickname' });
    return h(
      'form',
      {
        onsubmit: (e: Event) => {
          e.preventDefault();
          close();
          const nickname = input.value.trim() || null;
          void ctx.change('PUT', `${member}/nickname`, { nickname }, `Nickname of ${who} saved.`);
        },
      },
      h('label', {}, 'Nickname (empty to clear) ', input),
      h('div', { class: 'buttons' }, h('button', { type: 'button', onclick: close }, 'Cancel'), h('button', { type: 'submit', class: 'primary' }, 'Save')),
    );
  });
}
