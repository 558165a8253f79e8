// Gatehouse's pages: a hash router, the header with the account switcher,
// and one render function per page. Every menu is pre-checked by the page's
// own copy of the module; the host enforces every change.
import './style.css';
import { api, ApiError, setCsrf } from './api';
import { ask, loaded, module, onReload, stats } from './module';
import { h } from './ui';
import { failed, noticeBlock, runChange, type AccountRow, type Ctx, type Me } from './app';
import type { Accounts } from './gen/api';
import { usersPage } from './pages/users';
import { invitationsPage } from './pages/invitations';
import { ownersPage } from './pages/owners';
import { profilePage } from './pages/profile';
import { auditPage } from './pages/audit';
import { bulkPage } from './pages/bulk';
import { policiesPage } from './pages/policies';
import { acceptPage, mailboxPage, redeemPage, signInPage } from './pages/signin';

declare global {
  interface Window {
    /** For tests and the in-page benchmark. */
    gatehouse: { stats: typeof stats; loaded: typeof loaded; ask: typeof ask; module: typeof module };
  }
}
window.gatehouse = { stats, loaded, ask, module };

const top = document.getElementById('top') as HTMLElement;
const main = document.getElementById('main') as HTMLElement;
let demo = false;
let rendering = 0;

const TABS: [string, string][] = [
  ['users', 'Users'],
  ['invitations', 'Invitations'],
  ['owners', 'Owner removal'],
  ['audit', 'Audit log'],
  ['bulk', 'Bulk removal'],
];

function header(ctx: Ctx | null, tab: string | null): HTMLElement {
  const bar = h('div', { class: 'bar' }, h('a', { class: 'brand', href: '#/' }, 'Gatehouse'));
  if (ctx) {
    const switcher = h('select', { id: 'switcher', 'aria-label': 'Switch account' });
    for (const a of ctx.accounts) switcher.append(h('option', { value: a.id, selected: a.id === ctx.account }, a.parent ? `↳ ${a.name}` : a.name));
    switcher.addEventListener('change', () => (location.hash = `#/a/${switcher.value}/${tab ?? 'users'}`));
    const signOut = h('button', {
      type: 'button',
      class: 'link',
      onclick: async () => {
        await api('POST', '/v1/auth/sign-out', {}).catch(() => null);
        setCsrf(null);
        location.hash = '#/sign-in';
      },
    }, 'Sign out');
    // Shown when the module allows `author_policies` on the policy account.
    const policies = ctx.mayAuthor ? h('a', { href: '#/policies', id: 'policies-link', 'aria-current': tab === 'policies' ? 'page' : null }, 'Policies') : null;
    bar.append(ctx.accounts.length ? switcher : h('span', {}, 'No accounts'), h('span', { class: 'spacer' }), policies ?? '', h('a', { href: '#/profile', class: 'me' }, ctx.me.name), signOut);
  }
  const nav = ctx?.account
    ? h('nav', { 'aria-label': 'Account pages' }, ...TABS.map(([id, label]) => h('a', { href: `#/a/${ctx.account}/${id}`, 'aria-current': id === tab ? 'page' : null }, label)))
    : null;
  const info = loaded();
  const foot = info ? h('div', { class: 'module-info', title: 'The module this page checks with' }, `policy ${info.policyHash.slice(0, 12)} · module ${info.moduleSha256.slice(0, 12)}`) : null;
  return h('div', {}, bar, nav, foot);
}

async function signedIn(): Promise<{ me: Me; accounts: AccountRow[]; mayAuthor: boolean } | null> {
  try {
    const me = await api<Me>('GET', '/v1/me');
    setCsrf(me.csrf);
    const list = await api<Accounts>('GET', '/v1/accounts');
    // Only accounts the user may switch into, pre-checked by the module;
    // with the editor on, the second column is `author_policies`.
    const answer = await ask(list.question);
    const accounts = list.accounts.filter((_, i) => answer.cells[i]?.[0]?.allowed);
    const at = list.accounts.findIndex((a) => a.id === list.policy_account);
    const mayAuthor = at >= 0 && answer.cells[at]?.[1]?.allowed === true;
    return { me, accounts, mayAuthor };
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) return null;
    throw e;
  }
}

async function render(): Promise<void> {
  const ticket = ++rendering;
  const [path = '', qs = ''] = location.hash.replace(/^#/, '').split('?');
  const query = new URLSearchParams(qs);
  const parts = path.split('/').filter(Boolean);
  // The module downloads and compiles beside the page's API calls; a page
  // is shown once it is there, so a module that fails to load is the
  // page's problem, shown in its place.
  const ready = module();
  ready.catch(() => undefined);
  const paint = (page: HTMLElement, ctx: Ctx | null = null, tab: string | null = null) => {
    if (ticket !== rendering) return;
    top.replaceChildren(header(ctx, tab));
    main.replaceChildren(...[noticeBlock(), page].filter((x): x is HTMLElement => x !== null));
    main.setAttribute('aria-busy', 'false');
  };
  const show = async (page: HTMLElement, ctx: Ctx | null = null, tab: string | null = null) => {
    await ready;
    paint(page, ctx, tab);
  };
  main.setAttribute('aria-busy', 'true');
  try {
    if (parts[0] === 'sign-in' && parts[1]) return await show(await redeemPage(parts[1]));
    if (parts[0] === 'sign-in') return await show(signInPage(demo));
    if (parts[0] === 'mailbox') return await show(await mailboxPage(query));
    const session = await signedIn();
    if (!session) {
      location.hash = '#/sign-in';
      return;
    }
    if (parts[0] === 'accept' && parts[1]) return await show(await acceptPage(parts[1]));
    const account = parts[0] === 'a' && parts[1] ? parts[1] : session.accounts[0]?.id ?? null;
    const ctx: Ctx = {
      ...session,
      account,
      refresh: render,
      change: (method, p, body, done) => runChange(render, method, p, body, done),
    };
    if (parts[0] === 'profile') return await show(await profilePage(ctx), ctx, null);
    if (parts[0] === 'policies') return await show(await policiesPage(ctx), ctx, 'policies');
    if (!account) return await show(h('section', {}, h('h1', {}, 'No accounts'), h('p', {}, 'You are not a member of any account you may open. Ask an owner to invite you.')), ctx);
    const tab = parts[0] === 'a' ? parts[2] ?? 'users' : 'users';
    const page =
      tab === 'invitations' ? await invitationsPage(ctx, account)
      : tab === 'owners' ? await ownersPage(ctx, account)
      : tab === 'audit' ? await auditPage(account, query)
      : tab === 'bulk' ? await bulkPage(ctx, account)
      : await usersPage(ctx, account);
    await show(page, ctx, tab);
  } catch (e) {
    paint(h('section', {}, failed(e), h('p', {}, h('a', { href: '#/' }, 'Back to the start'))));
  }
}

async function start(): Promise<void> {
  // Start the module's download and compile now, beside the host's first
  // answers, not after them; a failure surfaces where a page asks.
  module().catch(() => undefined);
  const health = await fetch('/health').then((r) => r.json() as Promise<{ demo?: boolean }>).catch(() => ({ demo: false }));
  demo = health.demo === true;
  window.addEventListener('hashchange', () => void render());
  // A newer module was published: pre-check again with it.
  onReload(() => void render());
  await render();
}
void start();
