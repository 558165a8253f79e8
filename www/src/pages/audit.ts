// The audit log with filters: every decided change, allowed or denied, with
// the policies' reasons and the policy hash it was decided under.
import { api } from '../api';
import { h, reasonText, table, when } from '../ui';
import type { AuditLog } from '../gen/api';

/** Renders the audit page; filters live in the address (`?action=…`). */
export async function auditPage(account: string, query: URLSearchParams): Promise<HTMLElement> {
  const q = new URLSearchParams();
  for (const k of ['action', 'actor', 'decision', 'before']) {
    const v = query.get(k);
    if (v) q.set(k, v);
  }
  const data = await api<AuditLog>('GET', `/v1/accounts/${encodeURIComponent(account)}/audit?${q}`);
  const field = (name: string, label: string, input: HTMLInputElement | HTMLSelectElement) => {
    input.id = `f-${name}`;
    input.setAttribute('name', name);
    input.value = query.get(name) ?? '';
    return h('div', { class: 'field' }, h('label', { for: `f-${name}` }, label), input);
  };
  const decision = h('select', {}, h('option', { value: '' }, 'any'), h('option', { value: 'allowed' }, 'allowed'), h('option', { value: 'denied' }, 'denied'), h('option', { value: 'failed' }, 'failed'));
  const filters = h(
    'form',
    {
      class: 'filters',
      role: 'search',
      onsubmit: (e: Event) => {
        e.preventDefault();
        const f = new FormData(e.target as HTMLFormElement);
        const next = new URLSearchParams();
        for (const [k, v] of f) if (typeof v === 'string' && v) next.set(k, v);
        location.hash = `#/a/${account}/audit?${next}`;
      },
    },
    field('action', 'Action', h('input', { placeholder: 'remove_member' })),
    field('actor', 'Actor', h('input', { placeholder: 'user id' })),
    field('decision', 'Decision', decision),
    h('button', { type: 'submit' }, 'Filter'),
  );
  const rows = data.events.map((e) =>
    h(
      'tr',
      { class: e.decision },
      h('td', { 'data-label': 'When' }, when(e.at), e.count > 1 ? h('span', { class: 'tag' }, `×${e.count}`) : null),
      h('td', { 'data-label': 'Who' }, e.actor),
      h('td', { 'data-label': 'Action' }, e.action),
      h('td', { 'data-label': 'Target' }, e.target),
      h('td', { 'data-label': 'Decision' }, h('span', { class: `status ${e.decision}` }, e.decision)),
      h('td', { 'data-label': 'Why' }, reasonText(e.reasons ?? []), h('div', { class: 'muted small' }, `${e.source} · policy ${e.policy_hash.slice(0, 8)}`)),
    ),
  );
  const older = data.next_before
    ? h('a', { href: `#/a/${account}/audit?${new URLSearchParams({ ...Object.fromEntries(q), before: String(data.next_before) })}` }, 'Older entries →')
    : null;
  return h(
    'section',
    {},
    h('h1', {}, 'Audit log'),
    filters,
    rows.length === 0
      ? h('p', {}, 'No entries match.')
      : table({ class: 'audit' }, ['When', 'Who', 'Action', 'Target', 'Decision', 'Why'], rows),
    older,
  );
}
