// Signing in by emailed link, the demo mailbox, and accepting an invitation.
import { api, setCsrf } from '../api';
import { h } from '../ui';
import type { LinkEmail, Mailbox, Session } from '../gen/api';
import { failed, setNotice } from '../app';

/** The sign-in form. */
export function signInPage(demo: boolean): HTMLElement {
  const email = h('input', { id: 'signin-email', type: 'email', name: 'email', autocomplete: 'email', required: true });
  const out = h('div', { role: 'status' });
  return h(
    'section',
    { class: 'narrow' },
    h('h1', {}, 'Sign in to Gatehouse'),
    h(
      'form',
      {
        class: 'card',
        onsubmit: async (e: Event) => {
          e.preventDefault();
          try {
            await api('POST', '/v1/auth/sign-in', { email: email.value });
            out.replaceChildren(h('p', {}, `If ${email.value} has an account, a sign-in link is on its way. Open it in this browser: it works here only, once, for 15 minutes. One link a minute at most.`));
            if (demo) out.append(h('p', {}, 'Demo mode: ', h('a', { href: `#/mailbox?to=${encodeURIComponent(email.value)}` }, 'open the demo mailbox')));
          } catch (err) {
            out.replaceChildren(failed(err));
          }
        },
      },
      h('label', { for: 'signin-email' }, 'Email address'),
      email,
      h('button', { type: 'submit', class: 'primary' }, 'Email me a sign-in link'),
      demo ? h('p', { class: 'help' }, 'Demo data: try olivia@acme.test (owner), ada@acme.test (admin) or bea@acme.test (basic).') : null,
    ),
    out,
  );
}

/** Demo mode: the outbox, so sign-in links can be followed without SMTP. */
export async function mailboxPage(query: URLSearchParams): Promise<HTMLElement> {
  const to = query.get('to');
  const data = await api<Mailbox>('GET', `/v1/demo/mailbox${to ? `?to=${encodeURIComponent(to)}` : ''}`);
  const linkify = (text: string) =>
    text.split(/(https?:\/\/\S+)/).map((part) => (/^https?:\/\//.test(part) ? h('a', { href: part }, part) : part));
  return h(
    'section',
    { class: 'narrow' },
    h('h1', {}, 'Demo mailbox'),
    h('p', { class: 'help' }, 'Only in demo mode: the mails Gatehouse would send. Newest first.'),
    ...data.mails.map((m) => h('article', { class: 'card mail', 'data-to': m.to }, h('h2', {}, m.subject), h('p', { class: 'muted' }, `To ${m.to}`), h('pre', {}, ...linkify(m.body)))),
  );
}

/**
 * The confirm step of a sign-in link: which address it signs in, and a
 * button. Opening the link signs nobody in; only the browser that asked
 * for the link can see it or use it (the host checks its binding cookie).
 */
export async function redeemPage(token: string): Promise<HTMLElement> {
  const again = h('p', {}, h('a', { href: '#/sign-in' }, 'Ask for a new link'));
  let email: string;
  try {
    email = (await api<LinkEmail>('POST', '/v1/auth/link', { token })).email;
  } catch (err) {
    return h('section', { class: 'narrow' }, failed(err), again);
  }
  const out = h('div', { role: 'status' });
  const confirm = async (e: Event) => {
    e.preventDefault();
    try {
      const r = await api<Session>('POST', '/v1/auth/redeem', { token, label: navigator.userAgent.includes('HeadlessChrome') ? 'Headless Chromium' : 'Browser' });
      setCsrf(r.csrf);
      location.replace('#/');
    } catch (err) {
      out.replaceChildren(failed(err), again);
    }
  };
  return h(
    'section',
    { class: 'narrow' },
    h('h1', {}, 'Sign in to Gatehouse'),
    h(
      'form',
      { class: 'card', onsubmit: confirm },
      h('p', {}, 'Sign in as ', h('strong', {}, email), ' in this browser?'),
      h('p', { class: 'help' }, 'Continue only if you asked for this link here. The link works once, for 15 minutes from when you asked.'),
      h('button', { type: 'submit', class: 'primary', id: 'confirm-sign-in' }, 'Sign in'),
      ' ',
      h('a', { href: '#/sign-in' }, 'Cancel'),
    ),
    out,
  );
}

/** Accepts an invitation while signed in. */
export async function acceptPage(token: string): Promise<HTMLElement> {
  try {
    await api('POST', '/v1/invitations/accept', { token });
    setNotice({ kind: 'ok', text: 'Invitation accepted: welcome!' });
    location.replace('#/');
    return h('p', {}, 'Accepted.');
  } catch (err) {
    return h('section', { class: 'narrow' }, failed(err));
  }
}
