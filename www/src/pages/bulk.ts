// Agency bulk removal: remove one person from the agency and every
// sub-account in one job, with a progress bar and per-account results.
import { api } from '../api';
import { ask } from '../module';
import { h, reasonText } from '../ui';
import { setNotice, type Ctx } from '../app';
import type { BulkCandidates, ChangeResult, Job } from '../gen/api';
import type { Reason } from '../gen/module';

/** Renders the bulk-removal page of an agency. */
export async function bulkPage(ctx: Ctx, account: string): Promise<HTMLElement> {
  // The host asks on the whole subtree's facts, as the job's start is decided.
  const data = await api<BulkCandidates>('GET', `/v1/accounts/${encodeURIComponent(account)}/bulk-removals`);
  const answer = await ask(data.question);
  const cells = answer.cells[0] ?? [];
  const people = data.candidates;
  const name = ctx.accounts.find((a) => a.id === account)?.name ?? account;
  const select = h('select', { id: 'bulk-user' });
  people.forEach((m, i) => {
    const d = cells[i];
    select.append(h('option', { value: m.user }, `${m.name} (${m.email}) — in ${m.accounts.length} account${m.accounts.length === 1 ? '' : 's'}${d && !d.allowed ? ' — not allowed' : ''}`));
  });
  const why = h('p', { class: 'why', id: 'bulk-why', 'aria-live': 'polite' });
  const start = h('button', { type: 'submit', class: 'danger' }, 'Remove from every account');
  const progress = h('progress', { id: 'bulk-progress', max: 1, value: 0, 'aria-label': 'Bulk removal progress' });
  const status = h('p', { id: 'bulk-status', role: 'status' });
  const results = h('ul', { class: 'results', id: 'bulk-results' });
  const update = () => {
    const d = cells[people.findIndex((m) => m.user === select.value)];
    why.textContent = d && !d.allowed ? reasonText(d.reasons) : '';
    start.disabled = !d?.allowed;
  };
  const firstAllowed = people.findIndex((_, i) => cells[i]?.allowed);
  if (firstAllowed >= 0) select.value = people[firstAllowed]?.user ?? '';
  select.addEventListener('change', update);
  update();

  async function follow(job: string): Promise<void> {
    for (;;) {
      const j = await api<Job>('GET', `/v1/jobs/${job}`);
      progress.max = Math.max(1, j.progress.total);
      progress.value = j.progress.done;
      status.textContent = `${j.progress.done} of ${j.progress.total} accounts done (${j.status})`;
      results.replaceChildren(
        ...j.items.map((it) => h('li', { class: it.status }, h('strong', {}, it.account), `: ${it.status.replace('_', ' ')}`, it.reasons?.length ? ` — ${reasonText(it.reasons)}` : '')),
      );
      if (j.status !== 'running' && j.status !== 'pending') return;
      await new Promise((r) => setTimeout(r, 300));
    }
  }

  const form = h(
    'form',
    {
      class: 'card',
      onsubmit: async (e: Event) => {
        e.preventDefault();
        start.disabled = true;
        // Not ctx.change: the page stays to show the job's progress.
        let job: string | undefined;
        try {
          const r = await api<ChangeResult>('POST', `/v1/accounts/${encodeURIComponent(account)}/bulk-removals`, { user: select.value });
          job = typeof r.result.job === 'string' ? r.result.job : undefined;
        } catch (err) {
          setNotice({ kind: 'denied', text: `The removal did not start: ${(err as Error).message}`, reasons: (err as { reasons?: Reason[] }).reasons ?? [] });
          await ctx.refresh();
          return;
        }
        if (job) await follow(job);
        status.textContent += ' — finished';
      },
    },
    h('label', { for: 'bulk-user' }, 'Person to remove'),
    select,
    why,
    start,
  );
  return h(
    'section',
    {},
    h('h1', {}, `Bulk removal from ${name}`),
    h('p', { class: 'help' }, 'Removes one person from this agency and all its sub-accounts. Accounts where a rule blocks it (last owner, owned resources) are reported and left unchanged.'),
    form,
    h('div', { class: 'card' }, h('h2', {}, 'Progress'), progress, status, results),
  );
}
