import { h, replace, errorBox, fmtAgo, copyButton } from '../dom';
import { get, request, Token } from '../api';
import { Page } from '../router';
import { debug } from '../debug';
import { servicePicker } from '../components/servicepick';

/** freshTokens keeps the secrets created in this page session (memory only) for the install page. */
export const freshTokens: { id: string; name: string; service: string; token: string }[] = [];

/** tokensPage lists, creates and revokes API tokens. */
export function tokensPage(): Page {
  const ctrl = new AbortController();
  const list = h('div', null, h('p', { class: 'muted' }, 'loading…'));
  const created = h('div');
  const err = h('div');
  let service = '';
  const name = h('input', { name: 'name', placeholder: 'e.g. prod agents', required: true, maxlength: 200 });
  const form = h('form', { class: 'card form-row' },
    h('label', null, 'Name', name),
    h('label', null, 'Service (empty: any service)', servicePicker('', (s) => { service = s; }, 'any service', true)),
    h('button', { type: 'submit', class: 'btn primary' }, 'Create token'));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    replace(err);
    try {
      const r = await request<{ id: string | number; token: string }>('POST', '/tokens', { body: { service, name: name.value } });
      freshTokens.unshift({ id: String(r.id), name: name.value, service, token: r.token });
      const tok = h('code', { class: 'secret' }, r.token);
      replace(created, h('div', { class: 'card notice', role: 'status' },
        h('p', null, h('b', null, 'Token created. '), 'Copy it now: it is shown only once.'),
        h('div', { class: 'secret-row' }, tok, copyButton(() => r.token)),
        h('p', null, h('a', { href: '/admin/install', class: 'btn small' }, 'Use it in the agent install instructions'))));
      name.value = '';
      await load();
    } catch (ex) {
      replace(err, errorBox(ex));
    }
  });

  async function revoke(t: Token): Promise<void> {
    if (!confirm(`Revoke token "${t.name}"? Agents using it will be rejected.`)) return;
    try {
      await request('DELETE', `/tokens/${encodeURIComponent(String(t.id))}`);
      await load();
    } catch (ex) {
      replace(err, errorBox(ex));
    }
  }

  async function load(): Promise<void> {
    try {
      const r = await get<{ tokens: Token[] }>('/tokens', undefined, ctrl.signal);
      const tokens = r.tokens || [];
      replace(list, tokens.length ? h('table', { class: 'grid' },
        h('thead', null, h('tr', null, h('th', null, 'Name'), h('th', null, 'Service'), h('th', null, 'Created'), h('th', null, 'Status'), h('th', null, ''))),
        h('tbody', null, tokens.map((t) => h('tr', { class: t.revoked ? 'revoked' : '', dataset: { token: String(t.id) } },
          h('td', null, t.name),
          h('td', null, t.service || h('span', { class: 'muted' }, 'any')),
          h('td', { title: t.created_at }, fmtAgo(t.created_at)),
          h('td', null, t.revoked ? h('span', { class: 'badge bad' }, 'revoked') : h('span', { class: 'badge ok' }, 'active')),
          h('td', { class: 'actions' }, t.revoked ? null : h('button', { type: 'button', class: 'btn tiny danger', onclick: () => revoke(t) }, 'Revoke'))))))
        : h('p', { class: 'muted' }, 'No tokens yet.'));
      debug.ready = true;
    } catch (ex) {
      if ((ex as Error).name !== 'AbortError') replace(list, errorBox(ex));
    }
  }
  void load();
  return {
    el: h('div', { class: 'page admin' }, h('h2', null, 'API tokens'),
      h('p', { class: 'muted' }, 'Agents authenticate with a token; a token bound to a service only uploads to it.'),
      form, err, created, list),
    destroy() { ctrl.abort(); },
  };
}
