import { h, errorBox, replace } from '../dom';
import { request } from '../api';
import { Page, navigate } from '../router';
import { debug } from '../debug';

/** safeNext keeps only same-origin app paths as the post-login destination. */
function safeNext(v: string | null): string {
  if (!v || !v.startsWith('/') || v.startsWith('//') || v.startsWith('/login')) return '/';
  return v;
}

/** loginPage signs in with POST /api/v1/login and returns to ?next=. */
export function loginPage(onLogin: (user: string) => void): Page {
  const user = h('input', { name: 'username', autocomplete: 'username', required: true, autofocus: true });
  const pass = h('input', { name: 'password', type: 'password', autocomplete: 'current-password', required: true });
  const err = h('div');
  const submit = h('button', { type: 'submit', class: 'btn primary' }, 'Sign in');
  const form = h('form', { class: 'login card' },
    h('h1', null, h('span', { class: 'logo' }), 'Flamestream'),
    h('p', { class: 'muted' }, 'Continuous profiling studio'),
    h('label', null, 'Username', user),
    h('label', null, 'Password', pass),
    err, submit);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    submit.disabled = true;
    replace(err);
    try {
      const r = await request<{ username: string }>('POST', '/login', { body: { username: user.value, password: pass.value } });
      onLogin(r?.username || user.value);
      navigate(safeNext(new URL(location.href).searchParams.get('next')), { replace: true });
    } catch (ex) {
      const e2 = ex as { status?: number; message?: string };
      replace(err, errorBox(e2.status === 401 ? { message: 'Wrong username or password' } : ex));
      debug.error = e2.message || String(ex);
      submit.disabled = false;
      pass.select();
    }
  });
  debug.ready = true;
  return { el: h('div', { class: 'page login-page' }, form) };
}
