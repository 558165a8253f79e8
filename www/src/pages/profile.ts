// Own profile, notification preferences and connected devices. The
// profile's actions and the devices' sign-out are pre-checked by the module.
import { api } from '../api';
import { ask } from '../module';
import { actionMenu, h, reasonText, table, when } from '../ui';
import type { Ctx } from '../app';
import type { Decision } from '../gen/module';
import type { Devices, Me } from '../gen/api';

function guarded(d: Decision | undefined, control: HTMLElement, whyId: string): HTMLElement[] {
  if (d?.allowed) return [control];
  control.setAttribute('disabled', '');
  control.setAttribute('aria-describedby', whyId);
  return [control, h('p', { class: 'why', id: whyId }, reasonText(d?.reasons ?? []))];
}

/** Renders the profile page. */
export async function profilePage(ctx: Ctx): Promise<HTMLElement> {
  const [me, devices] = await Promise.all([
    api<Me>('GET', '/v1/me'),
    api<Devices>('GET', '/v1/me/devices'),
  ]);
  const mine = await ask(me.question);
  const cells = mine.cells[0] ?? [];
  const at = (key: string) => cells[me.action_keys.indexOf(key)];

  const name = h('input', { id: 'p-name', name: 'name', value: me.name, autocomplete: 'name' });
  const phone = h('input', { id: 'p-phone', name: 'phone', value: me.phone ?? '', autocomplete: 'tel' });
  const country = h('input', { id: 'p-country', name: 'country', value: me.country ?? '', autocomplete: 'country' });
  const save = h('button', { type: 'submit', class: 'primary' }, 'Save profile');
  const profile = h(
    'form',
    {
      class: 'card',
      onsubmit: (e: Event) => {
        e.preventDefault();
        void ctx.change('PATCH', '/v1/me', { name: name.value, phone: phone.value || null, country: country.value || null }, 'Profile saved.');
      },
    },
    h('h2', {}, 'Profile'),
    h('p', {}, 'Email: ', h('strong', {}, me.email)),
    h('label', { for: 'p-name' }, 'Name'), name,
    h('label', { for: 'p-phone' }, 'Phone'), phone,
    h('label', { for: 'p-country' }, 'Country'), country,
    ...guarded(at('update_profile'), save, 'why-profile'),
  );

  const byEmail = h('input', { type: 'checkbox', id: 'n-email' });
  byEmail.checked = me.notifications.email;
  const bySms = h('input', { type: 'checkbox', id: 'n-sms' });
  bySms.checked = me.notifications.sms;
  const saveN = h('button', { type: 'submit' }, 'Save preferences');
  const notifications = h(
    'form',
    {
      class: 'card',
      onsubmit: (e: Event) => {
        e.preventDefault();
        void ctx.change('PUT', '/v1/me/notifications', { email: byEmail.checked, sms: bySms.checked }, 'Notification preferences saved.');
      },
    },
    h('h2', {}, 'Notifications'),
    h('div', { class: 'check' }, byEmail, h('label', { for: 'n-email' }, 'By email')),
    h('div', { class: 'check' }, bySms, h('label', { for: 'n-sms' }, 'By SMS')),
    ...guarded(at('update_notifications'), saveN, 'why-notifications'),
  );

  const signOut = await ask(devices.question);
  const targets = (devices.question.targets as { device: string }[]).map((t) => t.device);
  const deviceRows = devices.devices.map((d) => {
    const cell = signOut.cells[targets.indexOf(d.id)]?.[0] ?? { allowed: false, outcome: 'not_permitted' as const, reasons: [{ policy: 'page', message: 'no answer' }] };
    return h(
      'tr',
      { 'data-device': d.id },
      h('td', { 'data-label': 'Device' }, d.label, d.current ? h('span', { class: 'tag' }, 'this browser') : null),
      h('td', { 'data-label': 'Kind' }, d.kind),
      h('td', { 'data-label': 'Signed in' }, when(d.created_at)),
      h('td', { class: 'actions' }, actionMenu(`Actions for ${d.label}`, [{ label: 'Sign out', decision: cell, run: () => ctx.change('DELETE', `/v1/me/devices/${d.id}`, undefined, `${d.label} is signed out.`) }])),
    );
  });
  const del = h('button', { type: 'button', class: 'danger', onclick: () => void ctx.change('DELETE', '/v1/me', undefined, 'Your profile was deleted.') }, 'Delete my profile');

  return h(
    'section',
    { class: 'profile' },
    h('h1', {}, 'Your profile'),
    profile,
    notifications,
    h(
      'div',
      { class: 'card' },
      h('h2', {}, 'Connected devices'),
      table({}, ['Device', 'Kind', 'Signed in'], deviceRows, { actions: true }),
    ),
    h('div', { class: 'card' }, h('h2', {}, 'Delete profile'), ...guarded(at('delete_profile'), del, 'why-delete')),
  );
}
