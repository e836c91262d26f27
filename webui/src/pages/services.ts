import { h, replace, fmtInt, fmtAgo, fmtCount, errorBox, parseTime } from '../dom';
import { get, Service } from '../api';
import { Page } from '../router';
import { debug } from '../debug';
import { sparkline } from '../components/sparkline';

type Col = 'name' | 'last_seen' | 'samples' | 'hosts' | 'cpu' | 'mem';

/** pct shows an average use in percent, or a dash when no agent reported it. */
function pct(v: number | undefined): string {
  return v === undefined ? '–' : v.toFixed(1) + ' %';
}

/** servicesPage lists the services with their activity; a row opens the profile. */
export function servicesPage(url: URL): Page {
  const ctrl = new AbortController();
  let data: Service[] | null = null;
  let q = url.searchParams;
  const body = h('div', null, h('p', { class: 'muted' }, 'loading…'));
  const filter = h('input', { type: 'search', placeholder: 'Filter services', class: 'search', value: q.get('q') || '' });
  filter.addEventListener('input', () => {
    const u = new URL(location.href);
    if (filter.value) u.searchParams.set('q', filter.value); else u.searchParams.delete('q');
    history.replaceState(null, '', u.pathname + u.search);
    q = u.searchParams;
    render();
  });
  const el = h('div', { class: 'page services' },
    h('div', { class: 'toolbar' }, h('h2', null, 'Services'), filter), body);

  function link(name: string, path = '/profile'): string {
    return `${path}?service=${encodeURIComponent(name)}`;
  }

  function render(): void {
    if (!data) return;
    const sort = (q.get('sort') || 'last_seen') as Col;
    const needle = (q.get('q') || '').toLowerCase();
    const rows = data.filter((s) => !needle || s.name.toLowerCase().includes(needle));
    rows.sort((a, b) => {
      switch (sort) {
        case 'name': return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
        case 'samples': return b.samples - a.samples;
        case 'hosts': return b.hosts - a.hosts;
        case 'cpu': return (b.cpu_avg ?? -1) - (a.cpu_avg ?? -1);
        case 'mem': return (b.mem_avg ?? -1) - (a.mem_avg ?? -1);
        default: return parseTime(b.last_seen) - parseTime(a.last_seen);
      }
    });
    const th = (c: Col, label: string, cls = '') => h('th', { class: cls + ' sortable' + (sort === c ? ' sorted' : '') },
      h('a', { href: `/services?sort=${c}${needle ? '&q=' + encodeURIComponent(needle) : ''}` }, label, sort === c ? ' ▾' : ''));
    if (!data.length) {
      replace(body, h('div', { class: 'empty card' },
        h('p', null, 'No service has sent profiles yet.'),
        h('p', null, h('a', { href: '/admin/install' }, 'Install the agent'), ' to start profiling.')));
      return;
    }
    replace(body, h('table', { class: 'grid services-table' },
      h('thead', null, h('tr', null, th('name', 'Service'), th('last_seen', 'Last seen'), th('samples', 'Samples', 'num'),
        th('hosts', 'Hosts', 'num'), th('cpu', 'CPU (24h)', 'num'), th('mem', 'Memory (24h)', 'num'),
        h('th', null, 'Trend (24h)'), h('th', null, ''))),
      h('tbody', null, rows.map((s) => {
        const recent = Date.now() / 1000 - parseTime(s.last_seen) < 600;
        return h('tr', { class: 'clickable', dataset: { service: s.name } },
          h('td', null, h('span', { class: 'dot' + (recent ? ' ok' : ''), title: recent ? 'active' : 'idle' }), h('a', { href: link(s.name) }, s.name)),
          h('td', { title: s.last_seen }, fmtAgo(s.last_seen)),
          h('td', { class: 'num', title: fmtInt(s.samples) }, fmtCount(s.samples)),
          h('td', { class: 'num' }, fmtInt(s.hosts)),
          h('td', { class: 'num cpu', title: 'average CPU use the agents reported' }, pct(s.cpu_avg)),
          h('td', { class: 'num mem', title: 'average memory use the agents reported' }, pct(s.mem_avg)),
          h('td', null, sparkline(s.trend || [])),
          h('td', { class: 'actions' }, h('a', { href: link(s.name, '/diff'), class: 'btn tiny' }, 'diff'),
            h('a', { href: `/admin/agents?service=${encodeURIComponent(s.name)}`, class: 'btn tiny' }, 'agents')));
      }))));
    body.querySelectorAll('tr.clickable').forEach((tr) => tr.addEventListener('click', (e) => {
      if ((e.target as Element).closest('a')) return;
      (tr.querySelector('a') as HTMLAnchorElement).click();
    }));
  }

  get<{ services: Service[] }>('/services', undefined, ctrl.signal).then((r) => {
    data = r.services || [];
    render();
    debug.ready = true;
  }).catch((e) => {
    if (e.name === 'AbortError') return;
    replace(body, errorBox(e));
    debug.error = e.message;
  });

  return {
    el,
    update(u) { q = u.searchParams; render(); },
    destroy() { ctrl.abort(); },
  };
}
