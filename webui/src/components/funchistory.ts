// Function history: for one frame name, its self and total samples and its share of all samples over the
// range, bucket by bucket, as a chart with a summary (GET /api/v1/function).

import { h, svg, replace, fmtInt, fmtPct, fmtDateTime, errorBox } from '../dom';
import { get, ApiError } from '../api';
import type { Params } from '../api';
import { fmtStep } from './functable';

/** FunctionPoint is one bucket of a function's history. */
export interface FunctionPoint { t: number; samples: number; self: number; total: number }
/** FunctionHistoryData is the reply of GET /api/v1/function. */
export interface FunctionHistoryData {
  name: string; step: number; samples: number; self: number; total: number; occurrences: number; points: FunctionPoint[];
}

const W = 1000;
const H = 160;

/** FunctionHistory fetches and draws the history of the function named in the URL (hidden without one). */
export class FunctionHistory {
  readonly el: HTMLElement;
  private title = h('h3', { class: 'fh-title' });
  private body = h('div', { class: 'fh-body' });
  private key = '';
  private ctrl: AbortController | null = null;
  /** data is the last history drawn (tests and the debug hook read it). */
  data: FunctionHistoryData | null = null;

  constructor(onClose: () => void) {
    this.el = h('section', { class: 'fn-history', hidden: true, 'aria-label': 'function history' },
      h('div', { class: 'toolbar' }, this.title,
        h('button', { type: 'button', class: 'btn small ghost fh-close', title: 'Close the history', onclick: onClose }, '✕')),
      this.body);
  }

  /** update shows the history of name over the selection params (none: hidden), fetching it when they changed. */
  update(params: Record<string, string | number | string[]> | null, name: string): void {
    const key = params && name ? JSON.stringify([params, name]) : '';
    this.el.hidden = !key;
    if (key === this.key) return;
    this.key = key;
    this.ctrl?.abort();
    this.data = null;
    this.el.dataset.ready = '';
    if (!key || !params) return;
    replace(this.title, 'History of ', h('code', null, name));
    replace(this.body, h('div', { class: 'muted' }, 'loading…'));
    void this.load({ ...params, name } as Params);
  }

  /** destroy stops a fetch in flight. */
  destroy(): void { this.ctrl?.abort(); }

  private async load(params: Params): Promise<void> {
    const c = (this.ctrl = new AbortController());
    try {
      const d = await get<FunctionHistoryData>('/function', params, c.signal);
      if (c.signal.aborted) return;
      this.data = d;
      this.render(d);
      this.el.dataset.ready = 'true';
    } catch (e) {
      if ((e as Error).name === 'AbortError' || (e instanceof ApiError && e.status === 401)) return;
      replace(this.body, errorBox(e));
    }
  }

  private render(d: FunctionHistoryData): void {
    const pts = d.points || [];
    const share = (v: number, all: number) => (all > 0 ? v / all : 0);
    const totals = pts.map((p) => share(p.total, p.samples));
    const selfs = pts.map((p) => share(p.self, p.samples));
    const top = Math.max(0.0001, ...totals) * 1.1;
    const n = pts.length;
    const x = (i: number) => (n > 1 ? (i / (n - 1)) * W : W / 2);
    const y = (f: number) => H - (f / top) * (H - 4);
    const line = (vals: number[], cls: string) => svg('polyline', {
      class: cls, points: vals.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(' '), 'vector-effect': 'non-scaling-stroke',
    });
    const area = n ? svg('polygon', {
      class: 'fh-area', points: `${x(0)},${H} ` + totals.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(' ') + ` ${x(n - 1)},${H}`,
    }) : null;
    // One hover target per bucket, with its numbers.
    const slots = pts.map((p, i) => svg('rect', {
      class: 'fh-slot', x: Math.max(0, x(i) - W / Math.max(n, 1) / 2), y: 0, width: W / Math.max(n, 1), height: H,
    }, svg('title', null, `${fmtDateTime(p.t)} · total ${fmtInt(p.total)} (${fmtPct(share(p.total, p.samples))}) · self ${fmtInt(p.self)} (${fmtPct(share(p.self, p.samples))}) of ${fmtInt(p.samples)} samples`)));
    const chart = svg('svg', { class: 'fh-chart', viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: 'none', role: 'img',
      'aria-label': `share of samples of ${d.name} over time` },
    area, line(totals, 'fh-total'), line(selfs, 'fh-self'), slots);
    const first = pts.length ? pts[0].t : 0;
    const last = pts.length ? pts[pts.length - 1].t + d.step : 0;
    replace(this.body,
      h('div', { class: 'fh-summary' },
        stat('Total', `${fmtInt(d.total)} samples`, fmtPct(share(d.total, d.samples)), 'total'),
        stat('Self', `${fmtInt(d.self)} samples`, fmtPct(share(d.self, d.samples)), 'self'),
        stat('Occurrences', `${fmtInt(d.occurrences)} stacks`, '', 'occurrences'),
        stat('All samples', fmtInt(d.samples), `${pts.length} × ${fmtStep(d.step)}`, 'samples')),
      h('div', { class: 'fh-legend muted' },
        h('span', { class: 'fh-key total' }), 'total share ', h('span', { class: 'fh-key self' }), 'self share',
        h('span', { class: 'fh-max' }, `max ${fmtPct(top / 1.1)}`)),
      h('div', { class: 'fh-chart-wrap' }, chart),
      h('div', { class: 'fh-axis muted' }, h('span', null, first ? fmtDateTime(first) : ''), h('span', null, last ? fmtDateTime(last) : '')));
  }
}

function stat(label: string, value: string, sub: string, key: string): HTMLElement {
  return h('div', { class: 'fh-stat', dataset: { stat: key } }, h('div', { class: 'muted' }, label), h('div', { class: 'fh-value' }, value), sub ? h('div', { class: 'muted' }, sub) : null);
}
