// The invite dialog: several emails, one or several accounts with a role
// each. Only roles the actor may grant are offered, and per-email problems
// (already a member, invitation pending, no free seat) show before sending;
// all of it from one batch call per render of the dialog.
import { api } from '../api';
import { ask } from '../module';
import { dialog, h, reasonText } from '../ui';
import { setNotice, type Ctx } from '../app';
import type { Decision, Reason } from '../gen/module';
import type { Accounts, InviteCreated, InviteResults } from '../gen/api';

const ROLES = ['basic', 'standard', 'admin', 'owner'] as const;
/** Stands for "someone new" while no address is typed: `.invalid` is reserved. */
const SOMEONE = 'someone@example.invalid';

/** Splits what was typed into addresses: commas, spaces or newlines. */
export function splitEmails(text: string): string[] {
  return [...new Set(text.split(/[\s,;]+/).map((e) => e.trim()).filter((e) => e.length > 0))];
}

/** Opens the invite dialog, preselecting `account`. */
export async function inviteDialog(ctx: Ctx, account: string): Promise<void> {
  // `invite_question` holds the members and invitations of exactly the
  // accounts whose invitations this user may see: typed addresses are
  // checked on those rows.
  const data = await api<Accounts>('GET', '/v1/accounts');
  const accounts = data.accounts;
  dialog('Invite users', (close) => {
    const emails = h('textarea', { id: 'invite-emails', rows: 3, placeholder: 'ann@example.com, ben@example.com', 'aria-describedby': 'invite-emails-help' });
    const list = h('fieldset', { class: 'invite-accounts' }, h('legend', {}, 'Accounts and roles'));
    const checks = h('div', { class: 'email-checks', 'aria-live': 'polite' });
    const send = h('button', { type: 'submit', class: 'primary' }, 'Send invitations');
    const picked = new Map<string, { box: HTMLInputElement; role: HTMLSelectElement }>();

    for (const a of accounts) {
      const box = h('input', { type: 'checkbox', id: `inv-${a.id}`, name: 'account', value: a.id });
      box.checked = a.id === account;
      const role = h('select', { 'aria-label': `Role in ${a.name}` });
      picked.set(a.id, { box, role });
      list.append(
        h(
          'div',
          { class: 'invite-account', 'data-account': a.id },
          box,
          h('label', { for: `inv-${a.id}` }, a.parent ? `↳ ${a.name}` : a.name),
          role,
          h('span', { class: 'seats' }, a.seats ? `${a.seats.in_use}/${a.seats.total} seats` : ''),
          h('span', { class: 'why', id: `inv-why-${a.id}` }),
        ),
      );
    }

    // One batch: every account × every role × (someone new + each email).
    async function render(): Promise<void> {
      const typed = splitEmails(emails.value);
      const who = [SOMEONE, ...typed];
      const actions = ROLES.flatMap((role) => who.map((email) => ({ action: 'invite', params: { role, email } })));
      const answer = await ask({ ...data.invite_question, targets: accounts.map((a) => ({ account: a.id })), actions });
      const cell = (t: number, role: number, w: number): Decision | undefined => answer.cells[t]?.[role * who.length + w];
      const problems: string[] = [];
      accounts.forEach((a, t) => {
        const p = picked.get(a.id);
        if (!p) return;
        const keep = p.role.value;
        p.role.replaceChildren();
        const offered = ROLES.filter((_, r) => cell(t, r, 0)?.allowed);
        for (const r of offered) p.role.append(h('option', { value: r }, r));
        if (offered.includes(keep as (typeof ROLES)[number])) p.role.value = keep;
        const why = document.getElementById(`inv-why-${a.id}`);
        if (offered.length === 0) {
          p.box.checked = false;
          p.box.disabled = true;
          p.role.disabled = true;
          if (why) why.textContent = reasonText(cell(t, 0, 0)?.reasons ?? []);
        } else if (why) why.textContent = '';
        if (!p.box.checked) return;
        const r = ROLES.indexOf(p.role.value as (typeof ROLES)[number]);
        typed.forEach((email, w) => {
          const d = cell(t, r, w + 1);
          if (d && !d.allowed) problems.push(`${email} → ${a.name}: ${reasonText(d.reasons)}`);
        });
      });
      checks.replaceChildren(...problems.map((p) => h('p', { class: 'warn' }, p)));
      const chosen = [...picked.values()].some((p) => p.box.checked);
      send.disabled = typed.length === 0 || !chosen;
      form.dataset.checked = String(typed.length);
    }
    const form = h(
      'form',
      {
        onsubmit: async (e: Event) => {
          e.preventDefault();
          const body = {
            emails: splitEmails(emails.value),
            accounts: [...picked.entries()].filter(([, p]) => p.box.checked).map(([id, p]) => ({ account: id, role: p.role.value })),
          };
          send.disabled = true;
          try {
            const r = await api<Partial<InviteResults> & Partial<InviteCreated>>('POST', '/v1/invitations', body);
            const results = r.results ?? [{ email: body.emails[0] ?? '', account: body.accounts[0]?.account ?? '', status: 201 }];
            const sent = results.filter((x) => x.status === 201).length;
            const refused = results.filter((x) => x.status !== 201);
            close();
            if (refused.length === 0) setNotice({ kind: 'ok', text: `${sent} invitation${sent === 1 ? '' : 's'} sent.` });
            else
              setNotice({
                kind: 'denied',
                text: `${sent} invitation${sent === 1 ? '' : 's'} sent, ${refused.length} refused:`,
                reasons: refused.map((x) => ({ policy: x.error?.reasons?.[0]?.policy ?? String(x.status), message: `${x.email} → ${x.account}: ${x.error?.message ?? x.status}` })),
              });
          } catch (err) {
            close();
            const reasons = (err as { reasons?: Reason[] }).reasons ?? [];
            setNotice({ kind: 'denied', text: `No invitation sent: ${(err as Error).message}`, reasons });
          }
          await ctx.refresh();
        },
      },
      h('label', { for: 'invite-emails' }, 'Email addresses'),
      emails,
      h('p', { id: 'invite-emails-help', class: 'help' }, 'Separate addresses with commas, spaces or new lines.'),
      list,
      checks,
      h('div', { class: 'buttons' }, h('button', { type: 'button', onclick: close }, 'Cancel'), send),
    );
    // `data-checked` says how many typed addresses the last pre-check covered.
    emails.addEventListener('input', () => void render());
    list.addEventListener('change', () => void render());
    void render();
    return form;
  });
}
