// Functions table like the original studio's: per function its self and total samples, the number of
// distinct stacks it appears in (occurrences) and a sparkline of its total over the range; sortable by
// each column, filtered by name; a row opens the function's history.

import { h, replace, fmtInt, fmtPct, errorBox } from '../dom';
import { get, ApiError } from '../api';
import type { Params } from '../api';
import { suffixOf, runtimeOf, legendColor } from '../flame/colors';
import { sparkline } from './sparkline';

/** TableFunction is one row of GET /api/v1/functions. */
export interface TableFunction { name: string; self: number; total: number; occurrences: number; trend: number[] }
/** FunctionTable is the reply of GET /api/v1/functions. */
export interface FunctionTable {
  total: number; step: number; from: number; samples: number[]; matched: number; functions: TableFunction[];
  /** roots are the selection's top-level frames (processes), whatever the name filter. */
  roots?: string[];
}

/** TABLE_SORTS are the table's orders (the API's sort values); numbers sort largest first, names A to Z. */
export const TABLE_SORTS = ['total', 'self', 'occurrences', 'name'] as const;
/** TABLE_LIMIT is how many rows the table asks for. */
export const TABLE_LIMIT = 500;

/** TableState is what the URL says about the table: its sort, its name filter and the selected function. */
export interface TableState { sort: string; filter: string; selected: string }

/** FunctionsTable fetches and draws the functions table of a selection. */
export class FunctionsTable {
  readonly el: HTMLElement;
  private body = h('div', { class: 'ft-body' });
  private input: HTMLInputElement;
  private count = h('span', { class: 'muted ft-count', 'aria-live': 'polite' });
  private data: FunctionTable | null = null;
  private key = '';
  private ctrl: AbortController | null = null;
  private state: TableState = { sort: 'total', filter: '', selected: '' };
  private timer = 0;

  constructor(private cb: { onSort: (s: string) => void; onFilter: (f: string) => void; onSelect: (name: string) => void; dark: () => boolean; onLoad?: () => void }) {
    this.input = h('input', { type: 'search', class: 'search ft-filter', placeholder: 'Filter functions by name', 'aria-label': 'filter functions' });
    this.input.addEventListener('input', () => {
      clearTimeout(this.timer);
      this.timer = window.setTimeout(() => this.cb.onFilter(this.input.value), 200);
    });
    this.el = h('section', { class: 'fn-table-panel' },
      h('div', { class: 'toolbar' }, h('h3', null, 'Functions'), this.input, this.count), this.body);
  }

  /** update fetches the table when the selection, sort or filter changed, and redraws it. */
  update(params: Record<string, string | number | string[]> | null, st: TableState): void {
    if (document.activeElement !== this.input) this.input.value = st.filter;
    const sort = (TABLE_SORTS as readonly string[]).includes(st.sort) ? st.sort : 'total';
    const key = params ? JSON.stringify([params, sort, st.filter]) : '';
    const changed = key !== this.key;
    this.state = { ...st, sort };
    if (changed) {
      this.key = key;
      this.data = null;
      this.ctrl?.abort();
      if (params) void this.load({ ...params, sort, limit: TABLE_LIMIT, match: st.filter || undefined } as Params);
    }
    this.render();
  }

  private async load(params: Params): Promise<void> {
    const c = (this.ctrl = new AbortController());
    try {
      this.data = await get<FunctionTable>('/functions', params, c.signal);
      if (!c.signal.aborted) {
        this.render();
        this.cb.onLoad?.();
      }
    } catch (e) {
      if ((e as Error).name === 'AbortError' || (e instanceof ApiError && e.status === 401)) return;
      replace(this.body, errorBox(e));
    }
  }

  /** roots are the top-level frames of the last reply (none while loading). */
  get roots(): string[] { return this.data?.roots || []; }

  /** rerender redraws (e.g. after a theme change). */
  rerender(): void { this.render(); }

  /** destroy stops a fetch in flight. */
  destroy(): void { this.ctrl?.abort(); clearTimeout(this.timer); }

  private render(): void {
    const d = this.data;
    const { sort, selected } = this.state;
    const head = (key: string, label: string, title: string) => h('th', {
      class: (key === 'name' ? '' : 'num ') + 'sortable' + (sort === key ? ' sorted' : ''), dataset: { sort: key },
      'aria-sort': sort === key ? (key === 'name' ? 'ascending' : 'descending') : 'none',
      onclick: () => this.cb.onSort(key), title,
    }, label, sort === key ? (key === 'name' ? ' ▴' : ' ▾') : '');
    const tbody = h('tbody');
    if (!this.key) tbody.append(h('tr', null, h('td', { colspan: 5, class: 'muted' }, 'Choose a service.')));
    else if (!d) tbody.append(h('tr', null, h('td', { colspan: 5, class: 'muted' }, 'loading…')));
    else if (!d.functions.length) tbody.append(h('tr', null, h('td', { colspan: 5, class: 'muted' }, d.total ? 'no function matches' : 'no samples')));
    else {
      const rows = sortRows(d.functions, sort);
      const tot = d.total || 1;
      for (const f of rows) {
        const pick = () => this.cb.onSelect(f.name);
        tbody.append(h('tr', {
          class: f.name === selected ? 'selected' : '', tabindex: 0, title: f.name, dataset: { name: f.name },
          onclick: pick, onkeydown: (e: KeyboardEvent) => { if (e.key === 'Enter') pick(); },
        },
        h('td', { class: 'fn' }, h('span', { class: 'swatch', style: { background: legendColor(runtimeOf(suffixOf(f.name)), this.cb.dark()) } }), f.name),
        h('td', { class: 'num', dataset: { col: 'self' } }, fmtPct(f.self / tot), h('div', { class: 'muted' }, fmtInt(f.self))),
        h('td', { class: 'num', dataset: { col: 'total' } }, fmtPct(f.total / tot), h('div', { class: 'muted' }, fmtInt(f.total))),
        h('td', { class: 'num', dataset: { col: 'occurrences' } }, fmtInt(f.occurrences)),
        h('td', { class: 'trend', title: trendTitle(d, f) }, sparkline(f.trend || [], 120, 22))));
      }
    }
    this.count.textContent = d ? `${fmtInt(d.functions.length)} of ${fmtInt(d.matched)} functions` : '';
    replace(this.body, h('table', { class: 'top-table fn-table' },
      h('thead', null, h('tr', null,
        head('name', 'Function', 'sort by name'), head('self', 'Self', 'samples whose leaf frame is the function'),
        head('total', 'Total', 'samples whose stack holds the function'),
        head('occurrences', 'Occurrences', 'distinct stacks that hold the function'),
        h('th', { class: 'trend' }, 'Trend'))),
      tbody));
  }
}

/** sortRows orders rows as the API does for a sort: largest first, ties and names A to Z. */
export function sortRows(rows: TableFunction[], sort: string): TableFunction[] {
  const key = (f: TableFunction) => (sort === 'self' ? f.self : sort === 'occurrences' ? f.occurrences : f.total);
  return rows.slice().sort((a, b) => {
    if (sort !== 'name') {
      const c = key(b) - key(a);
      if (c) return c;
    }
    return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
  });
}

function trendTitle(d: FunctionTable, f: TableFunction): string {
  const peak = Math.max(0, ...(f.trend || []));
  return `total per ${fmtStep(d.step)}: peak ${fmtInt(peak)} samples`;
}

/** fmtStep formats a bucket length in seconds ("5 min", "1 h", "1 d"). */
export function fmtStep(s: number): string {
  if (s % 86400 === 0) return `${s / 86400} d`;
  if (s % 3600 === 0) return `${s / 3600} h`;
  return `${Math.round(s / 60)} min`;
}
