// Filter bar: one dropdown per dimension listing its values with sample
// counts; each value can be included or excluded. Active filters show as chips.

import { h, fmtCount } from '../dom';
import type { FilterOptions } from '../api';
import { FILTER_KEYS, FILTER_LABELS, Filters } from '../state';

function toggled(f: Filters, key: string, v: string, on: boolean): Filters {
  const out: Filters = {};
  for (const k in f) out[k] = f[k].slice();
  const list = (out[key] = (out[key] || []).filter((x) => x !== v));
  if (on) list.push(v);
  return out;
}

/** filterBar renders the dropdowns and chips; onChange receives the new filter set. */
export function filterBar(opts: FilterOptions | null, cur: Filters, onChange: (f: Filters) => void, title = 'Filters'): HTMLElement {
  const drops = FILTER_KEYS.map((key) => {
    const values = (opts && opts[key]) || [];
    const inc = new Set(cur[key] || []);
    const exc = new Set(cur[key + '_not'] || []);
    const active = inc.size + exc.size;
    const list = h('ul', { class: 'dd-list' });
    const fill = (needle: string) => {
      list.textContent = '';
      const n = needle.toLowerCase();
      const shown = values.filter((v) => !n || v.value.toLowerCase().includes(n)).slice(0, 300);
      if (!shown.length) list.append(h('li', { class: 'muted' }, opts ? 'no values' : 'loading…'));
      for (const v of shown) {
        const isInc = inc.has(v.value);
        const isExc = exc.has(v.value);
        list.append(h('li', { class: isInc ? 'inc' : isExc ? 'exc' : '' },
          h('span', { class: 'dd-value', title: v.value }, v.value || '(empty)'),
          h('span', { class: 'dd-count' }, fmtCount(v.samples)),
          h('button', {
            type: 'button', class: 'btn tiny' + (isInc ? ' on' : ''), title: 'include', 'aria-pressed': String(isInc),
            onclick: () => onChange(toggled(toggled(cur, key + '_not', v.value, false), key, v.value, !isInc)),
          }, '+'),
          h('button', {
            type: 'button', class: 'btn tiny' + (isExc ? ' on' : ''), title: 'exclude', 'aria-pressed': String(isExc),
            onclick: () => onChange(toggled(toggled(cur, key, v.value, false), key + '_not', v.value, !isExc)),
          }, '−')));
      }
    };
    fill('');
    const search = values.length > 8 ? h('input', { type: 'search', placeholder: 'filter values', class: 'dd-search', oninput: (e: Event) => fill((e.target as HTMLInputElement).value) }) : null;
    return h('details', { class: 'dropdown', dataset: { filter: key } },
      h('summary', { class: 'btn small' + (active ? ' on' : '') }, FILTER_LABELS[key], active ? h('span', { class: 'badge' }, String(active)) : null,
        h('span', { class: 'muted' }, ` ${values.length}`)),
      h('div', { class: 'dd-panel' }, search, list));
  });
  const chips: HTMLElement[] = [];
  for (const key of FILTER_KEYS) {
    for (const [k, op] of [[key, '='], [key + '_not', '≠']] as [string, string][]) {
      for (const v of cur[k] || []) {
        chips.push(h('span', { class: 'chip' + (op === '≠' ? ' exc' : '') },
          `${FILTER_LABELS[key]} ${op} ${v}`,
          h('button', { type: 'button', class: 'chip-x', 'aria-label': 'remove filter', onclick: () => onChange(toggled(cur, k, v, false)) }, '×')));
      }
    }
  }
  if (chips.length > 1) chips.push(h('button', { type: 'button', class: 'btn tiny', onclick: () => onChange({}) }, 'clear all'));
  return h('div', { class: 'filter-bar' }, h('span', { class: 'label' }, title), drops, h('span', { class: 'chips' }, chips));
}
