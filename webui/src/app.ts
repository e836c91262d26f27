// Entry point: app shell (header, navigation, theme), routing and boot.

import './app.css';
import { h, replace } from './dom';
import { get, request } from './api';
import { Page, onNavigate, interceptLinks, navigate, currentURL } from './router';
import { debug, resetDebug } from './debug';
import { initTheme, themeToggle } from './theme';
import { loginPage } from './pages/login';
import { servicesPage } from './pages/services';
import { profilePage } from './pages/profile';
import { tokensPage } from './pages/tokens';
import { installPage } from './pages/install';
import { agentsPage } from './pages/agents';
import { settingsPage } from './pages/settings';
import { savedViews } from './components/savedviews';

interface Route { view: string; title: string; make: (url: URL) => Page }

let user = '';
const userSlot = h('span', { class: 'user muted' });

const routes: Record<string, Route> = {
  '/login': { view: 'login', title: 'Sign in', make: () => loginPage((name) => { user = name; renderUser(); }) },
  '/': { view: 'services', title: 'Services', make: servicesPage },
  '/services': { view: 'services', title: 'Services', make: servicesPage },
  '/profile': { view: 'profile', title: 'Profile', make: (u) => profilePage(u, 'profile') },
  '/diff': { view: 'diff', title: 'Diff', make: (u) => profilePage(u, 'diff') },
  '/admin/tokens': { view: 'tokens', title: 'API tokens', make: tokensPage },
  '/admin/install': { view: 'install', title: 'Install', make: installPage },
  '/admin/agents': { view: 'agents', title: 'Agents', make: agentsPage },
  '/admin/settings': { view: 'settings', title: 'Settings', make: settingsPage },
};

const notFound: Route = {
  view: 'notfound', title: 'Not found',
  make: () => ({ el: h('div', { class: 'page' }, h('h2', null, 'Page not found'), h('p', null, h('a', { href: '/' }, 'Back to the services'))) }),
};

const NAV: [string, string, string[]][] = [
  ['/services', 'Services', ['/', '/services']],
  ['/profile', 'Profile', ['/profile']],
  ['/diff', 'Diff', ['/diff']],
  ['/admin/agents', 'Agents', ['/admin/agents']],
  ['/admin/install', 'Install', ['/admin/install']],
  ['/admin/tokens', 'Tokens', ['/admin/tokens']],
  ['/admin/settings', 'Settings', ['/admin/settings']],
];

const nav = h('nav', { class: 'nav' });
const header = h('header', { class: 'topbar' },
  h('a', { href: '/', class: 'brand' }, h('span', { class: 'logo' }), 'Flamestream'),
  nav,
  h('span', { class: 'spacer' }),
  savedViews(),
  userSlot,
  themeToggle(),
  h('button', { type: 'button', class: 'btn small ghost', onclick: logout, dataset: { action: 'logout' } }, 'Sign out'));
const main = h('main', { id: 'main' });

let current: { route: Route; page: Page } | null = null;
let lastService = '';

function renderUser(): void {
  userSlot.textContent = user;
}

function renderNav(path: string, url: URL): void {
  const svc = url.searchParams.get('service');
  if (svc) lastService = svc;
  replace(nav, NAV.map(([href, label, paths]) => {
    let target = href;
    if ((href === '/profile' || href === '/diff') && lastService) target += '?service=' + encodeURIComponent(lastService);
    return h('a', { href: target, class: paths.includes(path) ? 'on' : '' }, label);
  }));
}

async function logout(): Promise<void> {
  try { await request('POST', '/logout'); } catch { /* signed out anyway */ }
  user = '';
  renderUser();
  navigate('/login', { replace: true });
}

function render(url: URL): void {
  const path = url.pathname.length > 1 ? url.pathname.replace(/\/+$/, '') : url.pathname;
  const route = routes[path] || notFound;
  header.hidden = route.view === 'login';
  renderNav(path, url);
  if (current && current.route === route && current.page.update) {
    current.page.update(url);
    return;
  }
  current?.page.destroy?.();
  resetDebug(route.view);
  document.title = `${route.title} · Flamestream`;
  const page = route.make(url);
  current = { route, page };
  replace(main, page.el);
  if (route.view === 'notfound') debug.ready = true;
  if (route.view !== 'login' && !user) {
    get<{ username: string }>('/me').then((r) => { user = r.username; renderUser(); }).catch(() => { /* 401 redirects */ });
  }
}

function boot(): void {
  initTheme();
  const root = document.getElementById('app')!;
  replace(root, header, main);
  interceptLinks(root);
  // Close open dropdowns when clicking elsewhere.
  document.addEventListener('click', (e) => {
    document.querySelectorAll('details.dropdown[open]').forEach((d) => {
      if (!d.contains(e.target as Node)) d.removeAttribute('open');
    });
  });
  onNavigate(render);
  render(currentURL());
}

boot();
