// Saved views and permalinks, in the top bar. A saved view is the path and query string of a profile or
// diff page (service, range, filters, view…), stored per user by the API (GET/POST /views, DELETE
// /views/{id}); it keeps a relative range ("last 6h") relative. The permalink is the page's URL with a
// relative range pinned to absolute from/to, so that it shows the same data whenever it is opened.

import './savedviews.css';
import { h, replace, copyText, errorBox } from '../dom';
import { get, request, ApiError } from '../api';
import { readRange } from '../state';

/** SavedView is a view as the API returns it. */
export interface SavedView { id: number; name: string; path: string; query: string; service: string; updated_at: string }

/** VIEW_PATHS are the pages whose state can be saved. */
const VIEW_PATHS = ['/profile', '/diff'];

/** permalink returns the URL of the current page with a relative range pinned to absolute from/to. */
export function permalink(loc: URL = new URL(location.href)): string {
  const u = new URL(loc.href);
  if (VIEW_PATHS.includes(u.pathname)) {
    const r = readRange(u.searchParams);
    if (r.preset !== null) {
      u.searchParams.delete('range');
      u.searchParams.set('from', String(r.from));
      u.searchParams.set('to', String(r.to));
    }
  }
  return u.href;
}

/** savedViews returns the top bar's permalink button and saved-views menu. */
export function savedViews(): HTMLElement {
  const linkOut = h('input', { class: 'mono sv-link', readOnly: true, 'aria-label': 'permalink', hidden: true });
  const linkBtn = h('button', {
    type: 'button', class: 'btn small', title: 'Copy a link to exactly this page, range pinned', dataset: { action: 'permalink' },
    onclick: async () => {
      const url = permalink();
      // The link is also shown (selected) so that it can be copied by hand where the clipboard is refused.
      linkOut.value = url;
      linkOut.hidden = false;
      linkBtn.textContent = (await copyText(url)) ? 'Link copied' : 'Copy the link below';
      menu.open = true;
      linkOut.select();
      setTimeout(() => { linkBtn.textContent = 'Permalink'; }, 2000);
    },
  }, 'Permalink');
  const nameIn = h('input', { name: 'view-name', placeholder: 'Name this view', 'aria-label': 'view name', maxlength: 100 });
  const saveBtn = h('button', { type: 'submit', class: 'btn small primary', dataset: { action: 'save-view' } }, 'Save');
  const msg = h('div', { class: 'sv-msg' });
  const list = h('ul', { class: 'dd-list sv-list' });
  // replacing is the name a 409 "exists" was answered for: saving it again overwrites that view.
  let replacing = '';
  const form = h('form', { class: 'sv-save' }, nameIn, saveBtn);
  const menu = h('details', { class: 'dropdown sv-menu' },
    h('summary', { class: 'btn small', dataset: { action: 'views' } }, 'Views ▾'),
    h('div', { class: 'dd-panel sv-panel' }, form, msg, list, linkOut));

  function saveable(): boolean { return VIEW_PATHS.includes(location.pathname); }

  function setReplacing(name: string): void {
    replacing = name;
    saveBtn.textContent = name ? 'Replace' : 'Save';
  }

  async function load(): Promise<void> {
    // ready says the list shows the server's answer to this opening (tests wait for it).
    list.dataset.ready = 'false';
    const can = saveable();
    nameIn.disabled = saveBtn.disabled = !can;
    nameIn.placeholder = can ? 'Name this view' : 'Open a profile or diff to save it';
    try {
      const r = await get<{ views: SavedView[]; max: number }>('/views');
      render(r.views || [], r.max);
    } catch (e) {
      if ((e as ApiError).status !== 401) replace(list, h('li', null, errorBox(e)));
      list.dataset.ready = 'true';
    }
  }

  function render(views: SavedView[], max: number): void {
    list.dataset.count = String(views.length);
    list.dataset.ready = 'true';
    replace(list, views.length ? views.map((v) => h('li', { dataset: { viewId: String(v.id), viewName: v.name } },
      h('a', { href: v.path + (v.query ? '?' + v.query : ''), title: v.path + '?' + v.query, onclick: () => { menu.open = false; } }, v.name),
      h('span', { class: 'dd-count' }, (v.path === '/diff' ? 'diff · ' : '') + v.service),
      h('button', {
        type: 'button', class: 'btn tiny danger', title: 'Delete this view', 'aria-label': 'delete ' + v.name, dataset: { action: 'delete-view' },
        onclick: async (e: Event) => {
          e.stopPropagation();
          try {
            await request('DELETE', '/views/' + v.id);
            replace(msg, `Deleted “${v.name}”.`);
          } catch (ex) { replace(msg, errorBox(ex)); }
          void load();
        },
      }, '×')))
      : h('li', { class: 'muted' }, 'No saved views yet.'));
    if (views.length >= max) replace(msg, `You have ${max} views, the most one user keeps: delete one to save another.`);
  }

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const name = nameIn.value.trim();
    if (!saveable()) return;
    if (!name) { replace(msg, 'Give the view a name.'); nameIn.focus(); return; }
    try {
      await request('POST', '/views', { body: { name, path: location.pathname, query: location.search.slice(1), replace: replacing === name } });
      replace(msg, `Saved “${name}”.`);
      nameIn.value = '';
      setReplacing('');
    } catch (ex) {
      const err = ex as ApiError;
      if (err.status === 409 && err.message.includes('exists')) {
        setReplacing(name);
        replace(msg, `A view named “${name}” exists: Replace overwrites it.`);
        return;
      }
      replace(msg, errorBox(ex));
    }
    void load();
  });
  nameIn.addEventListener('input', () => { if (replacing && nameIn.value.trim() !== replacing) { setReplacing(''); replace(msg); } });
  menu.addEventListener('toggle', () => {
    if (menu.open) void load();
    else { linkOut.hidden = true; replace(msg); setReplacing(''); list.dataset.ready = 'false'; }
  });
  return h('span', { class: 'saved-views' }, linkBtn, menu);
}
