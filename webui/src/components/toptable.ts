// Top functions table, sortable by self or total; a click highlights the function in the graph.

import { h, fmtInt, fmtPct } from '../dom';
import type { Top } from '../api';
import { suffixOf, runtimeOf, legendColor } from '../flame/colors';

/** topTable renders the functions; sort is "self" or "total"; selected is the highlighted name. */
export function topTable(top: Top | null, sort: string, selected: string, dark: boolean,
  onSort: (s: string) => void, onSelect: (name: string) => void): HTMLElement {
  const head = (key: string, label: string) => h('th', {
    class: 'num sortable' + (sort === key ? ' sorted' : ''), 'aria-sort': sort === key ? 'descending' : 'none',
    onclick: () => onSort(key), title: `sort by ${label.toLowerCase()}`,
  }, label, sort === key ? ' ▾' : '');
  const body = h('tbody');
  if (!top) body.append(h('tr', null, h('td', { colspan: 3, class: 'muted' }, 'loading…')));
  else if (!top.functions || !top.functions.length) body.append(h('tr', null, h('td', { colspan: 3, class: 'muted' }, 'no samples')));
  else {
    const fns = top.functions.slice().sort((a, b) => (sort === 'total' ? b.total - a.total : b.self - a.self));
    const tot = top.total || 1;
    for (const f of fns) {
      const rt = runtimeOf(suffixOf(f.name));
      body.append(h('tr', {
        class: f.name === selected ? 'selected' : '', tabindex: 0, title: f.name,
        onclick: () => onSelect(f.name === selected ? '' : f.name),
        onkeydown: (e: KeyboardEvent) => { if (e.key === 'Enter') onSelect(f.name === selected ? '' : f.name); },
      },
      h('td', { class: 'fn' }, h('span', { class: 'swatch', style: { background: legendColor(rt, dark) } }), f.name),
      h('td', { class: 'num' }, fmtPct(f.self / tot), h('div', { class: 'muted' }, fmtInt(f.self))),
      h('td', { class: 'num' }, fmtPct(f.total / tot), h('div', { class: 'muted' }, fmtInt(f.total)))));
    }
  }
  return h('table', { class: 'top-table' },
    h('thead', null, h('tr', null, h('th', null, 'Function'), head('self', 'Self'), head('total', 'Total'))), body);
}
