// History-API router: the URL holds all state, pages re-read it on change.

/** Page is a mounted view. update() is called when only the query changed. */
export interface Page {
  el: HTMLElement;
  update?(url: URL): void;
  destroy?(): void;
}

export type PageFactory = (url: URL) => Page;

type Listener = (url: URL) => void;
let listener: Listener | null = null;

/** onNavigate registers the single app-level listener. */
export function onNavigate(l: Listener): void {
  listener = l;
  window.addEventListener('popstate', () => l(new URL(location.href)));
}

/** currentURL is the page URL as a URL object. */
export function currentURL(): URL {
  return new URL(location.href);
}

/** navigate changes the URL (push by default) and re-renders. */
export function navigate(to: string | URL, opts: { replace?: boolean } = {}): void {
  const url = typeof to === 'string' ? new URL(to, location.origin) : to;
  const target = url.pathname + url.search + url.hash;
  if (target === location.pathname + location.search + location.hash) {
    // Same URL: still notify so pages can refresh.
  } else if (opts.replace) {
    history.replaceState(null, '', target);
  } else {
    history.pushState(null, '', target);
  }
  listener?.(new URL(location.href));
}

/** setParams updates query parameters of the current URL (null/'' deletes, arrays repeat). */
export function setParams(changes: Record<string, string | string[] | null | undefined>, opts: { replace?: boolean } = {}): void {
  const url = currentURL();
  for (const k in changes) {
    const v = changes[k];
    url.searchParams.delete(k);
    if (v == null || v === '') continue;
    if (Array.isArray(v)) v.forEach((x) => url.searchParams.append(k, x));
    else url.searchParams.set(k, v);
  }
  navigate(url, opts);
}

/** redirectToLogin goes to the login page, remembering where to come back. */
export function redirectToLogin(): void {
  if (location.pathname === '/login') return;
  const next = location.pathname + location.search;
  navigate('/login?next=' + encodeURIComponent(next), { replace: true });
}

/** interceptLinks turns clicks on same-origin <a href> into router navigations. */
export function interceptLinks(root: HTMLElement): void {
  root.addEventListener('click', (e) => {
    if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
    const a = (e.target as Element).closest?.('a');
    if (!a || a.target || a.hasAttribute('download')) return;
    const href = a.getAttribute('href');
    if (!href || href.startsWith('#')) return;
    const url = new URL(href, location.href);
    if (url.origin !== location.origin || url.pathname.startsWith('/api/')) return;
    e.preventDefault();
    navigate(url);
  });
}
