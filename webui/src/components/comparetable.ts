// Side-by-side A vs B table of a diff (GET /api/v1/diff?format=table): per function its self and total in
// the comparison (A) and the baseline (B), the absolute deltas and the normalized ones (A's share of its
// samples minus B's). Sorted by the server; a column header sorts by it (again: the other way round). The
// order is in the URL: csort=KEY&corder=asc|desc.

import { h, replace, fmtInt, errorBox } from '../dom';
import { get, ApiError } from '../api';
import './comparetable.css';
import type { Params } from '../api';

/** CompareRow is one row of the table. */
export interface CompareRow {
  name: string; self: number; total: number; base_self: number; base_total: number;
  delta_self: number; delta_total: number; ndelta_self: number; ndelta_total: number;
}
/** CompareReply is the reply of GET /api/v1/diff?format=table. */
export interface CompareReply { total: number; base_total: number; count: number; service: string; base_service: string; functions: CompareRow[] }

/** COMPARE_SORTS are the API's sort keys; "change" (|normalized Δ total|) is the default. */
export const COMPARE_SORTS = ['change', 'name', 'self', 'total', 'base_self', 'base_total', 'delta_self', 'delta_total', 'ndelta_self', 'ndelta_total'];
/** COMPARE_LIMIT is how many rows the table asks for. */
export const COMPARE_LIMIT = 500;

/** CompareTable fetches and draws the side-by-side table. */
export class CompareTable {
  readonly el: HTMLElement;
  private body = h('div', { class: 'cmp-body' });
  private count = h('span', { class: 'muted cmp-count', 'aria-live': 'polite' });
  private key = '';
  private ctrl: AbortController | null = null;
  private data: CompareReply | null = null;
  private sort = 'change';
  private asc = false;

  constructor(private onSort: (sort: string | null, order: string | null) => void, private onSelect: (name: string) => void) {
    this.el = h('section', { class: 'cmp-table-panel', hidden: true },
      h('div', { class: 'toolbar' }, h('h3', null, 'A vs B'), this.count), this.body);
  }

  /** update fetches when the selection or the order changed (params null: hidden). */
  update(params: Record<string, string | number | string[]> | null, sort: string | null, order: string | null): void {
    this.el.hidden = !params;
    this.sort = sort && COMPARE_SORTS.includes(sort) ? sort : 'change';
    this.asc = order ? order === 'asc' : this.sort === 'name';
    const key = params ? JSON.stringify([params, this.sort, this.asc]) : '';
    if (key === this.key) return;
    this.key = key;
    this.data = null;
    this.ctrl?.abort();
    if (!params) return;
    this.render();
    void this.load({ ...params, format: 'table', sort: this.sort, order: this.asc ? 'asc' : 'desc', limit: COMPARE_LIMIT } as Params);
  }

  private async load(params: Params): Promise<void> {
    const c = (this.ctrl = new AbortController());
    try {
      const d = await get<CompareReply>('/diff', params, c.signal);
      if (c.signal.aborted) return;
      if (!Array.isArray(d.functions)) throw new Error('the server answered the diff without its table (format=table)');
      this.data = d;
      this.render();
    } catch (e) {
      if ((e as Error).name === 'AbortError' || (e instanceof ApiError && e.status === 401)) return;
      replace(this.body, errorBox(e));
    }
  }

  /** destroy stops a fetch in flight. */
  destroy(): void { this.ctrl?.abort(); }

  private render(): void {
    const d = this.data;
    const head = (key: string, label: string, title: string) => {
      const on = this.sort === key;
      return h('th', {
        class: (key === 'name' ? '' : 'num ') + 'sortable' + (on ? ' sorted' : ''), dataset: { sort: key }, title,
        'aria-sort': on ? (this.asc ? 'ascending' : 'descending') : 'none',
        onclick: () => {
          const defAsc = key === 'name';
          const asc = on ? !this.asc : defAsc;
          this.onSort(key === 'change' ? null : key, asc === defAsc ? null : asc ? 'asc' : 'desc');
        },
      }, label, on ? (this.asc ? ' ▴' : ' ▾') : '');
    };
    const tbody = h('tbody');
    if (!d) tbody.append(h('tr', null, h('td', { colspan: 10, class: 'muted' }, 'loading…')));
    else if (!d.functions.length) tbody.append(h('tr', null, h('td', { colspan: 10, class: 'muted' }, 'no samples on either side')));
    else {
      for (const r of d.functions) {
        tbody.append(h('tr', { title: r.name, dataset: { name: r.name }, tabindex: 0, onclick: () => this.onSelect(r.name) },
          h('td', { class: 'fn' }, r.name),
          num('self', fmtInt(r.self)), num('total', fmtInt(r.total)),
          num('base_self', fmtInt(r.base_self)), num('base_total', fmtInt(r.base_total)),
          num('delta_self', signed(r.delta_self), r.delta_self), num('delta_total', signed(r.delta_total), r.delta_total),
          num('ndelta_self', pp(r.ndelta_self), r.ndelta_self), num('ndelta_total', pp(r.ndelta_total), r.ndelta_total),
          h('td', { class: 'bar' }, deltaBar(r.ndelta_total))));
      }
    }
    this.count.textContent = d ? `A: ${d.service} ${fmtInt(d.total)} samples · B: ${d.base_service} ${fmtInt(d.base_total)} samples · ${fmtInt(d.functions.length)} of ${fmtInt(d.count)} functions` : '';
    replace(this.body, h('table', { class: 'top-table cmp-table' },
      h('thead', null,
        h('tr', null, h('th'), h('th', { colspan: 2, class: 'num' }, 'A'), h('th', { colspan: 2, class: 'num' }, 'B (baseline)'),
          h('th', { colspan: 2, class: 'num' }, 'Δ samples'), h('th', { colspan: 2, class: 'num' }, 'Δ normalized'), head('change', '|Δ|', 'size of the normalized change of total')),
        h('tr', null,
          head('name', 'Function', 'sort by name'),
          head('self', 'Self', 'A: samples whose leaf frame is the function'), head('total', 'Total', 'A: samples whose stack holds the function'),
          head('base_self', 'Self', 'B: self samples'), head('base_total', 'Total', 'B: total samples'),
          head('delta_self', 'Self', 'A − B self samples'), head('delta_total', 'Total', 'A − B total samples'),
          head('ndelta_self', 'Self', "A's self share minus B's, in percentage points"),
          head('ndelta_total', 'Total', "A's total share minus B's, in percentage points"), h('th'))),
      tbody));
  }
}

function num(col: string, text: string, sign = 0): HTMLElement {
  return h('td', { class: 'num' + (sign > 0 ? ' worse' : sign < 0 ? ' better' : ''), dataset: { col } }, text);
}

function signed(n: number): string {
  return (n > 0 ? '+' : n < 0 ? '−' : '') + fmtInt(Math.abs(n));
}

/** pp formats a share difference in percentage points. */
export function pp(f: number): string {
  const v = Math.abs(f * 100);
  const s = v >= 10 ? v.toFixed(1) : v >= 0.01 ? v.toFixed(2) : v ? v.toExponential(1) : '0';
  return (f > 0 ? '+' : f < 0 ? '−' : '') + s + ' pp';
}

function deltaBar(f: number): HTMLElement {
  const w = Math.min(50, Math.abs(f) * 100);
  return h('div', { class: 'dbar' }, h('span', { class: f > 0 ? 'up' : 'down', style: { width: `${w}%`, [f > 0 ? 'left' : 'right']: '50%' } }));
}
