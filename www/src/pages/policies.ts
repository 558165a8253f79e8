// The policy editor: edit the Cedar files, see every problem and every
// decision-table result as you type, see which recorded decisions the change
// would flip, and publish it.
//
// Why the checks run here: the lint (`checkPolicies`: parse errors with
// their places, annotations, placeholders) and the decision tables run in
// the page's own copy of the module, the very engine the host enforces
// with, so the author sees in milliseconds what a publish would refuse.
// Cedar's type validation would add about 280 KB to the module, so the host
// does it (`POST /v1/policies/check`), with what needs the store or the
// solver: the impact report (recorded decisions) and the publish (every
// check again, then a pending publish request that a second owner approves
// before the version lands). Who may open this page, ask for a publish and
// answer one is decided by the policies (`author_policies`,
// `publish_policies`, `approve_publish`…), never here: the host hands out
// the module's answers for each pending request and the page shows them.
import { api, ApiError } from '../api';
import { module } from '../module';
import { h, problem, when } from '../ui';
import type { Answer, Checked, Envelope, Problem, TableResult } from '../gen/module';
import type { Ctx } from '../app';
import type { CheckedDraft, FlipKind, ImpactReport, ImpactSide as Side, PolicyTable, Policies as Editable, PolicyFile, PublishAnswered, PublishPending, PublishRequest as PublishRequestRow } from '../gen/api';


// A flip names its audit row, action, account and the determining policy
// ids, never a message: the report spans every tenant's log, and messages
// render their facts.
const KIND: Record<FlipKind, string> = {
  allow_to_deny: 'allow → deny',
  deny_to_allow: 'deny → allow',
  reasons_changed: 'reasons changed',
};

// ------------------------------------------------------------ highlighting

const TOKENS = new RegExp(
  [
    '(\\/\\/[^\\n]*)', // 1 comment
    '("(?:[^"\\\\\\n]|\\\\.)*"?)', // 2 string
    '(@[A-Za-z_][A-Za-z0-9_]*)', // 3 annotation
    '\\b(permit|forbid|when|unless|principal|action|resource|context|in|has|like|is|if|then|else|true|false)\\b', // 4 keyword
    '\\b([A-Z][A-Za-z0-9_]*)(?=::)', // 5 entity type
    '\\b(\\d+)\\b', // 6 number
  ].join('|'),
  'g',
);
const CLASSES = ['', 'c-comment', 'c-string', 'c-annotation', 'c-keyword', 'c-type', 'c-number'];

/** Cedar text as highlighted nodes (text nodes and spans; never HTML). */
export function highlight(text: string): Node[] {
  const out: Node[] = [];
  let at = 0;
  for (const m of text.matchAll(TOKENS)) {
    const start = m.index ?? 0;
    if (start > at) out.push(document.createTextNode(text.slice(at, start)));
    const group = m.slice(1).findIndex((g) => g !== undefined) + 1;
    out.push(h('span', { class: CLASSES[group] ?? '' }, m[0]));
    at = start + m[0].length;
  }
  out.push(document.createTextNode(text.slice(at) + '\n'));
  return out;
}

// ------------------------------------------------------- decision tables

/**
 * Answers and checks every table in the module, under whatever policies it
 * has loaded: the module's own checker (`{"op":"tables",…}`, crates/policy
 * `table`), the one `gatehouse policy test` and `cargo xtask vectors` run.
 * One result per table, or why there are none.
 */
function runTables(call: (input: string) => string, tables: PolicyTable[]): TableResult[] | string {
  const envelope: Envelope = { op: 'tables', tables: tables.map((t) => ({ input: t.input, expect: t.expect })) };
  const answer = JSON.parse(call(JSON.stringify(envelope))) as Answer;
  if (answer.type === 'failure') return answer.errors.map((x) => `${x.code}: ${x.message}`).join('; ');
  return answer.tables ?? 'no table results in the answer';
}

// ----------------------------------------------------------------- places

/** 1-based line and column of `offset` in `text`. */
function lineCol(text: string, offset: number): { line: number; col: number } {
  const before = text.slice(0, offset);
  const line = before.split('\n').length;
  return { line, col: offset - (before.lastIndexOf('\n') + 1) + 1 };
}

/** Where a problem is: its file and offset (a file name, or a policy id's file). */
function place(files: PolicyFile[], p: Problem): { file: number; offset: number } | null {
  const byName = files.findIndex((f) => f.file === p.location);
  if (byName >= 0) return { file: byName, offset: p.offset ?? 0 };
  const needle = `@id("${p.location}")`;
  for (const [i, f] of files.entries()) {
    const at = f.text.indexOf(needle);
    if (at >= 0) return { file: i, offset: p.offset !== undefined && p.offset < f.text.length ? p.offset : at };
  }
  return null;
}

// ----------------------------------------------------------------- drafts

/**
 * Edited files outlive a render: the page renders again whenever the host
 * announces another module (anyone's publish), and a reload must not lose
 * work either. Kept in sessionStorage with the policy hash they started
 * from; a publish or "Discard changes" clears them.
 */
interface Drafts {
  base: string;
  files: Record<string, string>;
}
const DRAFTS = 'gatehouse.policy-drafts';

function loadDrafts(): Drafts | null {
  try {
    return JSON.parse(sessionStorage.getItem(DRAFTS) ?? 'null') as Drafts | null;
  } catch {
    return null;
  }
}

function saveDrafts(base: string, files: PolicyFile[], original: Map<string, string>): void {
  const changed = Object.fromEntries(files.filter((f) => original.get(f.file) !== f.text).map((f) => [f.file, f.text]));
  if (Object.keys(changed).length === 0) sessionStorage.removeItem(DRAFTS);
  else sessionStorage.setItem(DRAFTS, JSON.stringify({ base, files: changed } satisfies Drafts));
}

/** The last publish's or approval's answer, shown by the render that follows it. */
let lastPublish: { text: string; log: string[] } | null = null;

// ------------------------------------------------------------------- page

/** Renders the policy editor. */
export async function policiesPage(ctx: Ctx): Promise<HTMLElement> {
  const data = await api<Editable>('GET', '/v1/policies');
  const original = new Map(data.policies.map((f) => [f.file, f.text]));
  const drafts = loadDrafts();
  const files: PolicyFile[] = data.policies.map((f) => ({ file: f.file, text: drafts?.files[f.file] ?? f.text }));
  // Drafts begun on other policies: say so (the tables and the impact
  // compare them with what is live now).
  let base = drafts?.base ?? data.policy_hash;
  const stale = drafts && drafts.base !== data.policy_hash && Object.keys(drafts.files).length > 0
    ? h(
        'div',
        { class: 'notice denied', role: 'alert', id: 'stale' },
        h('p', {}, `Someone published since you began editing ${Object.keys(drafts.files).join(', ')}. Your edits are kept, but publishing them as they are would undo what changed in those files. Review them against what is live now (the tables and the impact use it), then keep them or discard them.`),
        h('button', {
          type: 'button',
          onclick: () => {
            base = data.policy_hash;
            saveDrafts(base, files, original);
            stale?.remove();
          },
        }, 'Keep my edits on the live policies'),
      )
    : null;
  let current = 0;
  let valid = false;
  let tablesFailed = 0;

  const list = h('ul', { class: 'files', role: 'list' });
  const title = h('h2', { class: 'file-title' });
  const pre = h('pre', { class: 'hl', 'aria-hidden': 'true' });
  const area = h('textarea', { class: 'source', spellcheck: 'false', autocapitalize: 'off', autocomplete: 'off', wrap: 'off', id: 'policy-source' });
  const code = h('div', { class: 'code' }, pre, area);
  const checks = h('div', { class: 'checks', id: 'checks', role: 'status', 'aria-live': 'polite' });
  const tables = h('div', { class: 'tables', id: 'tables' });
  const impactOut = h('div', { id: 'impact' });
  const publishOut = h('div', { id: 'publish-result' });
  const message = h('input', { id: 'publish-message', placeholder: 'Why this change (recorded with the version)', 'aria-label': 'Publish message' });
  const impactButton = h('button', { type: 'button', id: 'impact-button' }, 'See impact on recorded decisions');
  const publishButton = h('button', { type: 'button', class: 'primary', id: 'publish-button' }, 'Publish');
  const discard = h('button', { type: 'button', class: 'link' }, 'Discard changes');

  const changed = () => files.filter((f) => original.get(f.file) !== f.text).map((f) => f.file);
  const bundle = () => new TextEncoder().encode(JSON.stringify({ format: 1, schema: data.schema, policies: [...files].sort((a, b) => (a.file < b.file ? -1 : a.file > b.file ? 1 : 0)) }));

  function paint(): void {
    pre.replaceChildren(...highlight(area.value));
    pre.scrollTop = area.scrollTop;
    pre.scrollLeft = area.scrollLeft;
  }

  function showList(problems: Problem[]): void {
    const counts = new Map<number, number>();
    for (const p of problems) {
      const at = place(files, p);
      if (at) counts.set(at.file, (counts.get(at.file) ?? 0) + 1);
    }
    list.replaceChildren(
      ...files.map((f, i) =>
        h(
          'li',
          {},
          h(
            'button',
            { type: 'button', class: 'link file', 'aria-current': i === current ? 'true' : null, onclick: () => open(i) },
            f.file,
            original.get(f.file) !== f.text ? h('span', { class: 'tag', title: 'changed' }, 'changed') : null,
            counts.get(i) ? h('span', { class: 'tag bad' }, `${counts.get(i)} problem${counts.get(i) === 1 ? '' : 's'}`) : null,
          ),
        ),
      ),
    );
  }

  function open(i: number, offset?: number): void {
    current = i;
    const f = files[i];
    if (!f) return;
    title.textContent = f.file;
    area.value = f.text;
    area.setAttribute('aria-label', `Cedar text of ${f.file}`);
    paint();
    if (offset !== undefined) {
      area.focus();
      area.setSelectionRange(offset, offset);
      const { line } = lineCol(f.text, offset);
      area.scrollTop = Math.max(0, (line - 3) * 19);
      paint();
    }
    void recheck();
  }

  function showProblems(problems: Problem[], where: string): void {
    showList(problems);
    checks.replaceChildren(
      h('p', { class: 'bad' }, `${problems.length} problem${problems.length === 1 ? '' : 's'} (${where}): nothing can be published until they are fixed`),
      h(
        'ul',
        { class: 'problems' },
        ...problems.map((p) => {
          const at = place(files, p);
          const f = at ? files[at.file] : undefined;
          const lc = at && f ? lineCol(f.text, at.offset) : null;
          const label = at && f && lc ? `${f.file}:${lc.line}:${lc.col}` : p.location;
          return h('li', {}, at ? h('button', { type: 'button', class: 'link', onclick: () => open(at.file, at.offset) }, label) : h('code', {}, label), ' ', p.message);
        }),
      ),
    );
  }

  let ticket = 0;
  async function recheck(): Promise<void> {
    const mine = ++ticket;
    const gh = await module();
    if (mine !== ticket) return;
    const started = performance.now();
    const bytes = bundle();
    // The lint: parse errors with their places, annotations, placeholders.
    const linted = gh.check(bytes) as Checked;
    publishButton.disabled = true;
    valid = false;
    if (linted.type === 'invalid') {
      showProblems(linted.problems, 'found in this page');
      tables.replaceChildren(h('p', { class: 'muted' }, 'Decision tables run once the policies parse.'));
      return;
    }
    showList([]);
    const run = gh.withPolicies(bytes, (call) => runTables(call, data.tables));
    const results = run.result ?? `the draft did not load: ${JSON.stringify(run.loaded)}`;
    const failed = (mismatch: string): TableResult => ({ passed: false, mismatch });
    const failures = data.tables
      .map((t, i) => ({ t, r: typeof results === 'string' ? failed(results) : (results[i] ?? failed('no result')) }))
      .filter((x) => !x.r.passed);
    tablesFailed = failures.length;
    const ms = performance.now() - started;
    checks.replaceChildren(h('p', { class: 'muted', id: 'lint' }, `Parsed and linted in this page; the host is checking the types…`));
    tables.replaceChildren(
      h('p', { class: failures.length ? 'bad' : 'good', id: 'tables-summary' }, `${data.tables.length} decision tables: ${data.tables.length - failures.length} passed, ${failures.length} failed`),
      h('p', { class: 'muted small' }, `linted and answered in this page’s module in ${ms.toFixed(0)} ms`),
      failures.length
        ? h(
            'ul',
            { class: 'failures' },
            ...failures.slice(0, 50).map(({ t, r }) =>
              h('li', {}, h('strong', {}, t.name), t.rule ? h('span', { class: 'tag' }, t.rule) : null, h('div', {}, r.mismatch ?? ''), r.returned ? h('div', { class: 'muted small' }, `returned: ${r.returned}`) : null),
            ),
          )
        : '',
    );
    // Cedar's type validation is the host's (too large for the module).
    let strict: Checked;
    try {
      strict = await api<CheckedDraft>('POST', '/v1/policies/check', { policies: files });
    } catch (e) {
      if (mine === ticket) checks.replaceChildren(problem(`The host could not check the types: ${e instanceof Error ? e.message : String(e)}`));
      return;
    }
    if (mine !== ticket) return;
    if (strict.type === 'invalid') {
      showProblems(strict.problems, 'found by the host’s type validation');
      return;
    }
    valid = true;
    checks.replaceChildren(h('p', { class: 'good' }, `Valid: ${strict.report.policies} policies, ${strict.report.actions} actions (strict validation on the host)`));
    publishButton.disabled = !valid || tablesFailed > 0 || changed().length === 0;
  }

  let timer: number | undefined;
  area.addEventListener('input', () => {
    const f = files[current];
    if (f) f.text = area.value;
    saveDrafts(base, files, original);
    lastPublish = null;
    paint();
    window.clearTimeout(timer);
    timer = window.setTimeout(() => void recheck(), 200);
  });
  area.addEventListener('scroll', () => {
    pre.scrollTop = area.scrollTop;
    pre.scrollLeft = area.scrollLeft;
  });
  area.addEventListener('keydown', (e) => {
    if (e.key !== 'Tab' || e.shiftKey) return;
    // Two spaces, like `gatehouse policy fmt`; Escape then Tab leaves the editor.
    e.preventDefault();
    area.setRangeText('  ', area.selectionStart, area.selectionEnd, 'end');
    area.dispatchEvent(new Event('input'));
  });
  area.addEventListener('keyup', (e) => {
    if (e.key === 'Escape') (area.closest('section')?.querySelector('#impact-button') as HTMLElement | null)?.focus();
  });
  discard.addEventListener('click', () => {
    for (const f of files) f.text = original.get(f.file) ?? f.text;
    sessionStorage.removeItem(DRAFTS);
    base = data.policy_hash;
    stale?.remove();
    open(current);
  });

  impactButton.addEventListener('click', async () => {
    impactButton.disabled = true;
    impactOut.replaceChildren(h('p', { class: 'muted' }, 'Replaying the recorded decisions under your draft…'));
    try {
      const r = await api<ImpactReport>('POST', '/v1/policies/impact', { policies: files });
      impactOut.replaceChildren(impactReport(r));
    } catch (e) {
      impactOut.replaceChildren(problem(e instanceof Error ? e.message : String(e), e instanceof ApiError ? e.reasons : []));
    } finally {
      impactButton.disabled = false;
    }
  });

  publishButton.addEventListener('click', async () => {
    if (!message.value.trim()) {
      message.focus();
      publishOut.replaceChildren(problem('Say why in the message: it is recorded with the version.'));
      return;
    }
    publishButton.disabled = true;
    publishOut.replaceChildren(h('p', { class: 'muted' }, 'Publishing: the decision tables and the proofs run again on the host…'));
    try {
      const r = await api<PublishPending>('POST', '/v1/policies/publish', { policies: files, message: message.value, base });
      lastPublish = {
        text: `Publish ${r.pending.id} (policy ${r.pending.policy_hash.slice(0, 12)}) waits for a second owner of ${data.account} to approve it, until ${when(r.pending.expires_at)}. Nothing is live until then.`,
        log: r.log,
      };
      sessionStorage.removeItem(DRAFTS);
      await ctx.refresh();
    } catch (e) {
      publishOut.replaceChildren(problem(e instanceof Error ? e.message : String(e), e instanceof ApiError ? e.reasons : []));
      publishButton.disabled = false;
    }
  });

  const live = data.version
    ? `Live: version ${data.version.version}, published by ${data.version.author} ${when(data.version.published_at)}: “${data.version.message}”`
    : 'Live: the policies the host was started with (nothing published yet)';
  // Shown by every render until the next edit (a publish is followed by
  // more than one render: this page's and the module reload's).
  if (lastPublish) {
    const r = lastPublish;
    publishOut.replaceChildren(h('div', { class: 'notice ok', role: 'status' }, r.text), h('pre', { class: 'log' }, r.log.join('\n')));
  }
  const pending = await pendingPublishes(ctx);
  open(0);
  return h(
    'section',
    { class: 'editor' },
    h('div', { class: 'page-head' }, h('h1', {}, 'Policies'), h('span', { class: 'muted small' }, `policy ${data.policy_hash.slice(0, 12)}`)),
    stale,
    h('p', { class: 'muted' }, live, '. Edits stay in this page until you publish. The lint and the decision tables run in this page’s copy of the module as you type; the host checks the types.'),
    h('div', { class: 'editor-grid' }, h('nav', { 'aria-label': 'Policy files', class: 'file-nav' }, list), h('div', { class: 'editor-main' }, title, code)),
    h('h2', {}, 'Validation'),
    checks,
    h('h2', {}, 'Decision tables'),
    tables,
    h('h2', {}, 'Impact and publish'),
    h('div', { class: 'publish' }, impactButton, message, publishButton, discard),
    impactOut,
    publishOut,
    h('h2', {}, 'Publish requests'),
    pending,
  );
}

/** The publish requests; approve, decline and cancel as the module answered for the viewer. */
async function pendingPublishes(ctx: Ctx): Promise<HTMLElement> {
  const { requests } = await api<{ requests: PublishRequestRow[] }>('GET', '/v1/policies/publish-requests');
  const out = h('div', { id: 'publish-requests' });
  if (requests.length === 0) {
    out.append(h('p', { class: 'muted' }, 'No publish requests yet.'));
    return out;
  }
  const rows = requests.map((r) => {
    const cell = h('td', {});
    const note = h('div', { id: `publish-${r.id}-why`, class: 'muted small' });
    const verbs = [
      ['approve_publish', 'approve', 'Approve'],
      ['decline_publish', 'decline', 'Decline'],
      ['cancel_publish', 'cancel', 'Cancel'],
    ] as const;
    for (const [action, path, label] of verbs) {
      const d = r.decisions?.[action];
      if (!d) continue;
      const button = h('button', { type: 'button', class: action === 'approve_publish' ? 'primary' : '', id: `publish-${r.id}-${path}` }, label);
      if (!d.allowed) {
        button.disabled = true;
        button.setAttribute('aria-describedby', note.id);
        button.title = d.reasons.map((x) => x.message).join('; ');
      }
      button.addEventListener('click', async () => {
        button.disabled = true;
        try {
          const a = await api<PublishAnswered>('POST', `/v1/policies/publish-requests/${encodeURIComponent(r.id)}/${path}`);
          lastPublish = {
            text: a.version
              ? `Published version ${a.version} (policy ${(a.policy_hash ?? '').slice(0, 12)}). This host decides with it now, and so does this page.`
              : `Publish ${r.id}: ${a.status}.`,
            log: [],
          };
          // An approval makes the host announce the new module: the page loads it and renders again.
          await ctx.refresh();
        } catch (e) {
          note.replaceChildren(problem(e instanceof Error ? e.message : String(e), e instanceof ApiError ? e.reasons : []));
          button.disabled = false;
        }
      });
      cell.append(button);
    }
    const denied = r.decisions ? Object.values(r.decisions).filter((d) => !d.allowed) : [];
    if (denied.length && denied.length === Object.keys(r.decisions ?? {}).length) {
      note.textContent = [...new Set(denied.flatMap((d) => d.reasons.map((x) => x.message)))].join('; ');
    }
    cell.append(note);
    return h(
      'tr',
      { id: `publish-${r.id}` },
      h('td', {}, when(r.created_at)),
      h('td', {}, r.author),
      h('td', {}, `“${r.message}”`),
      h('td', {}, r.status === 'approved' && r.version ? `approved: version ${r.version}` : r.status),
      cell,
    );
  });
  const head = h('thead', {}, h('tr', {}, ...['Asked', 'By', 'Message', 'Status', ''].map((c) => h('th', { scope: 'col' }, c))));
  out.append(h('table', { class: 'publish-requests' }, head, h('tbody', {}, ...rows)));
  return out;
}

function impactReport(r: ImpactReport): HTMLElement {
  const total = r.allow_to_deny + r.deny_to_allow + r.reasons_changed;
  const summary = h(
    'p',
    { id: 'impact-summary', class: total ? 'bad' : 'good' },
    `Replayed ${r.replayed} recorded decision${r.replayed === 1 ? '' : 's'}: ${r.allow_to_deny} allow → deny, ${r.deny_to_allow} deny → allow, ${r.reasons_changed} with other reasons`,
    r.unreplayable.length ? `; ${r.unreplayable.length} could not be replayed` : '',
    '.',
  );
  if (!total) return h('div', {}, summary);
  const groups = r.groups.map((g) => h('tr', {}, h('td', {}, KIND[g.kind]), h('td', {}, g.action), h('td', {}, h('code', {}, g.rule)), h('td', {}, String(g.decisions))));
  const side = (s: Side) => h('td', {}, s.allowed ? 'allowed' : 'denied', ' ', h('code', {}, s.policies.join(', ')));
  const flips = r.flips.slice(0, 50).map((f) =>
    h(
      'tr',
      {},
      h('td', {}, `#${f.audit_id}`),
      h('td', {}, when(f.at)),
      h('td', {}, f.account ?? '—'),
      h('td', {}, f.action),
      h('td', {}, KIND[f.kind]),
      side(f.before),
      side(f.after),
    ),
  );
  const head = (cols: string[]) => h('thead', {}, h('tr', {}, ...cols.map((c) => h('th', { scope: 'col' }, c))));
  return h(
    'div',
    {},
    summary,
    h('table', { class: 'impact-groups' }, head(['Change', 'Action', 'Policies', 'Decisions']), h('tbody', {}, ...groups)),
    h('h3', {}, r.flips.length > 50 ? `The first 50 of ${r.flips.length} decisions` : 'The decisions'),
    h('table', { class: 'impact-flips' }, head(['Audit', 'When', 'Account', 'Action', 'Change', 'Was', 'Would be']), h('tbody', {}, ...flips)),
  );
}
