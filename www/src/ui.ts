// Small DOM helpers: elements, an accessible action menu, a dialog and
// notices. No framework: the pages are plain functions that render.
import type { Decision, Reason } from './gen/module';

type Child = Node | string | null | undefined | false;
type Attrs = Record<string, string | number | boolean | null | undefined | EventListener>;

/** Creates an element: `h('button', {class: 'x', onclick}, 'Label')`. */
export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Attrs = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children) if (c !== null && c !== undefined && c !== false) el.append(c);
  return el;
}

let ids = 0;
/** A unique element id. */
export function uid(prefix: string): string {
  ids += 1;
  return `${prefix}-${ids}`;
}

/** Announces a message to screen readers and shows it in the notice area. */
export function say(message: string): void {
  const live = document.getElementById('live');
  if (live) live.textContent = message;
}

/** The reasons of a decision as readable text. */
export function reasonText(reasons: Reason[]): string {
  return reasons.map((r) => r.message).join('; ');
}

/** A list of reasons with their policy ids, for denials shown in full. */
export function reasonList(reasons: Reason[]): HTMLElement {
  return h('ul', { class: 'reasons' }, ...reasons.map((r) => h('li', {}, r.message, ' ', h('code', { class: 'policy' }, r.policy))));
}

/** One item of an action menu. */
export interface MenuItem {
  label: string;
  /** The module's pre-check; a denied item is shown disabled with its reasons. */
  decision: Decision;
  run: () => unknown;
  /** Marks the item as dangerous (red). */
  danger?: boolean;
}

let openMenu: { close: () => void } | null = null;
document.addEventListener('click', (e) => {
  if (openMenu && !(e.target as Element).closest('.menu-wrap')) openMenu.close();
});

/**
 * A ⋮ button with a menu of every action: allowed ones run, denied ones are
 * disabled and say why in text (read by screen readers through
 * aria-describedby, not a tooltip). Keyboard: arrows, Home/End, Escape.
 */
export function actionMenu(label: string, items: MenuItem[]): HTMLElement {
  const menuId = uid('menu');
  const button = h('button', {
    class: 'menu-button',
    type: 'button',
    'aria-haspopup': 'menu',
    'aria-expanded': 'false',
    'aria-controls': menuId,
    'aria-label': label,
  }, '⋮');
  const menu = h('ul', { class: 'menu', role: 'menu', id: menuId, 'aria-label': label, hidden: true });
  const entries: HTMLElement[] = [];
  for (const item of items) {
    const allowed = item.decision.allowed;
    const whyId = uid('why');
    const entry = h('li', {
      role: 'menuitem',
      tabindex: '-1',
      class: `menu-item${item.danger ? ' danger' : ''}`,
      'aria-disabled': allowed ? null : 'true',
      'aria-describedby': allowed ? null : whyId,
      'data-action': item.label,
    }, h('span', { class: 'menu-label' }, item.label));
    if (!allowed) entry.append(h('span', { class: 'why', id: whyId }, reasonText(item.decision.reasons)));
    const activate = () => {
      if (!allowed) return;
      close();
      void item.run();
    };
    entry.addEventListener('click', activate);
    entry.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' || e.key === ' ') {
        e.preventDefault();
        activate();
      }
    });
    entries.push(entry);
    menu.append(entry);
  }
  const focus = (i: number) => entries[(i + entries.length) % entries.length]?.focus();
  function open(at: number) {
    openMenu?.close();
    menu.hidden = false;
    button.setAttribute('aria-expanded', 'true');
    openMenu = { close };
    focus(at);
  }
  function close() {
    menu.hidden = true;
    button.setAttribute('aria-expanded', 'false');
    if (openMenu?.close === close) openMenu = null;
  }
  button.addEventListener('click', () => (menu.hidden ? open(0) : close()));
  button.addEventListener('keydown', (e) => {
    if (e.key === 'ArrowDown') {
      e.preventDefault();
      open(0);
    } else if (e.key === 'ArrowUp') {
      e.preventDefault();
      open(entries.length - 1);
    }
  });
  menu.addEventListener('keydown', (e) => {
    const i = entries.indexOf(document.activeElement as HTMLElement);
    if (e.key === 'ArrowDown') focus(i + 1);
    else if (e.key === 'ArrowUp') focus(i - 1);
    else if (e.key === 'Home') focus(0);
    else if (e.key === 'End') focus(entries.length - 1);
    else if (e.key === 'Escape' || e.key === 'Tab') {
      close();
      button.focus();
    } else return;
    e.preventDefault();
  });
  return h('div', { class: 'menu-wrap' }, button, menu);
}

/** A modal dialog; resolves when closed. `body` gets a close function. */
export function dialog(title: string, body: (close: () => void) => Node): void {
  const titleId = uid('dlg');
  const d = h('dialog', { 'aria-labelledby': titleId });
  const close = () => {
    d.close();
    d.remove();
  };
  d.append(h('h2', { id: titleId }, title), body(close));
  d.addEventListener('close', () => d.remove());
  document.body.append(d);
  d.showModal();
}

/** A block that shows an error, with the policies' reasons for a denial. */
export function problem(message: string, reasons: Reason[] = []): HTMLElement {
  return h('div', { class: 'problem', role: 'alert' }, h('p', {}, message), reasons.length ? reasonList(reasons) : null);
}

/** Formats unix seconds as a local date and time. */
export function when(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined) return '';
  return new Date(seconds * 1000).toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
}

/**
 * A table with column headers; `actions` adds a last column for row menus,
 * named for screen readers only.
 */
export function table(attrs: Attrs, columns: string[], rows: Node[], options: { actions?: boolean; caption?: string } = {}): HTMLTableElement {
  const head = columns.map((c) => h('th', { scope: 'col' }, c));
  if (options.actions) head.push(h('th', { scope: 'col' }, h('span', { class: 'visually-hidden' }, 'Actions')));
  return h(
    'table',
    attrs,
    options.caption ? h('caption', { class: 'visually-hidden' }, options.caption) : null,
    h('thead', {}, h('tr', {}, ...head)),
    h('tbody', {}, ...rows),
  );
}
