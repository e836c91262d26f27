// Host metrics panel: the agents' CPU and memory use (percent) over the range for the service or the
// filtered hosts, from GET /api/v1/metrics (query/metrics.go), drawn above the flame graph.

import { h, svg, replace, fmtDateTime, fmtInt } from '../dom';
import { get, ApiError } from '../api';
import type { Params } from '../api';

/** MetricStats are one metric's statistics; percentiles are absent where only hourly/daily sums are kept. */
export interface MetricStats { avg: number; p50?: number; p90?: number; p99?: number; max?: number }
/** MetricsBucket is one bucket of the series (t: unix seconds). */
export interface MetricsBucket { t: number; profiles: number; hosts: number; cpu: MetricStats; mem: MetricStats }
/** MetricsSummary is the whole range. */
export interface MetricsSummary { profiles: number; hosts: number; cores: number; cpu: MetricStats; mem: MetricStats; percentiles_from: string }
/** HostMetrics is the reply of GET /api/v1/metrics. */
export interface HostMetrics {
  from: string; to: string; step: number;
  series: MetricsBucket[];
  summary: MetricsSummary;
  trend: { from: string; to: string; previous: MetricsSummary; cpu: number | null; mem: number | null; unavailable?: string };
  /** ignored names the request's parameters that cannot apply to host metrics (the runtime and process view). */
  ignored?: string[];
}

/** ignoredNote says why the runtime and process view does not change the host metrics. */
function ignoredNote(ignored: string[] | undefined): HTMLElement | null {
  if (!ignored || !ignored.length) return null;
  return h('div', { class: 'hm-ignored muted', dataset: { ignored: ignored.join(',') }, style: { fontSize: '12px' } },
    'The runtime and process view (', ignored.join(', '), ') does not apply here: agents measure each host\'s CPU and memory for all its processes and runtimes together.');
}

const W = 600;
const H = 90;

/** pct formats a percentage as the agent's numbers deserve: one decimal. */
function pct(v: number | undefined): string {
  return v == null ? '–' : v.toFixed(1) + '%';
}

/** pts formats a trend in percentage points with its sign (why is the server's reason for no trend). */
function pts(v: number | null, why?: string): string {
  if (why) return 'no trend: ' + why;
  if (v == null) return 'no data a week earlier';
  return (v > 0 ? '+' : v < 0 ? '−' : '±') + Math.abs(v).toFixed(1) + ' pts vs a week earlier';
}

/** HostMetricsPanel shows the CPU and memory series and the summary of a selection. */
export class HostMetricsPanel {
  readonly el: HTMLElement;
  private body: HTMLElement;
  private seq = 0;

  constructor() {
    this.body = h('div', { class: 'hm-body muted' });
    this.el = h('section', {
      class: 'host-metrics', 'aria-label': 'host metrics',
      style: { background: 'var(--panel)', border: '1px solid var(--border)', borderRadius: '8px', padding: '6px 8px', margin: '6px 0' },
    }, this.body);
  }

  /** load fetches the metrics of a selection (service, from, to, filters); null hides the panel. */
  load(params: Params | null, signal: AbortSignal): void {
    const seq = ++this.seq;
    this.el.hidden = params == null;
    if (params == null) return;
    this.el.dataset.state = 'loading';
    replace(this.body, 'host metrics: loading…');
    get<HostMetrics>('/metrics', params, signal).then((m) => {
      if (seq === this.seq) this.render(m);
    }).catch((e: unknown) => {
      if (seq !== this.seq || (e as Error).name === 'AbortError' || (e instanceof ApiError && e.status === 401)) return;
      // The panel is extra: its failure is said here and leaves the flame graph alone.
      this.el.dataset.state = 'error';
      replace(this.body, h('span', { class: 'hm-error' }, 'host metrics unavailable: ' + (e as Error).message));
    });
  }

  private render(m: HostMetrics): void {
    const s = m.summary;
    this.el.dataset.state = 'ready';
    if (!s.profiles) {
      replace(this.body, h('span', { class: 'hm-empty' }, 'No host metrics in this range (the agents send them with each profile).'), ignoredNote(m.ignored));
      return;
    }
    const from = Date.parse(m.from) / 1000;
    const to = Date.parse(m.to) / 1000;
    const line = (name: string, st: MetricStats, trend: number | null) =>
      h('div', { class: 'hm-sum', dataset: { metric: name }, style: { fontSize: '13px' } },
        h('b', null, name === 'cpu' ? 'CPU ' : 'Memory '),
        h('span', { class: 'hm-avg' }, 'avg ' + pct(st.avg)),
        st.p50 != null ? h('span', { class: 'hm-pcts' }, ` · p50 ${pct(st.p50)} · p90 ${pct(st.p90)} · p99 ${pct(st.p99)} · max ${pct(st.max)}`) : null,
        h('span', { class: 'hm-trend muted' }, ' · ' + pts(trend, m.trend.unavailable)));
    replace(this.body,
      h('div', { class: 'hm-head', style: { display: 'flex', gap: '12px', flexWrap: 'wrap', alignItems: 'baseline' } },
        h('strong', null, 'Host metrics'),
        h('span', { class: 'hm-hosts' }, `${fmtInt(s.hosts)} hosts`),
        s.cores ? h('span', { class: 'hm-cores' }, `${fmtInt(s.cores)} cores`) : null,
        h('span', { class: 'hm-profiles muted' }, `${fmtInt(s.profiles)} reports`)),
      ignoredNote(m.ignored),
      line('cpu', s.cpu, m.trend.cpu),
      line('mem', s.mem, m.trend.mem),
      h('div', { class: 'hm-charts', style: { display: 'grid', gridTemplateColumns: '1fr 1fr', gap: '8px', marginTop: '4px' } },
        this.chart('cpu', 'CPU %', m, from, to),
        this.chart('mem', 'Memory %', m, from, to)));
  }

  /** chart draws one metric: the average (solid), p90 (dashed) and the maximum (dotted), 0–100 %. */
  private chart(metric: 'cpu' | 'mem', title: string, m: HostMetrics, from: number, to: number): HTMLElement {
    const span = Math.max(1, to - from);
    const x = (t: number) => (((t + m.step / 2) - from) / span) * W;
    const y = (v: number) => H - (Math.max(0, Math.min(100, v)) / 100) * H;
    const poly = (key: keyof MetricStats, cls: string, dash: string | null, width: number) => {
      const p = m.series.filter((b) => b[metric][key] != null).map((b) => `${x(b.t).toFixed(1)},${y(b[metric][key]!).toFixed(1)}`);
      if (!p.length) return null;
      return svg('polyline', {
        class: cls, points: p.join(' '), fill: 'none', stroke: 'var(--accent, #e4572e)', 'stroke-width': width,
        'stroke-dasharray': dash, 'vector-effect': 'non-scaling-stroke', 'data-n': p.length,
      });
    };
    const el = svg('svg', { class: 'hm-chart', viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: 'none', width: '100%', height: H, role: 'img', 'aria-label': title },
      svg('line', { x1: 0, x2: W, y1: y(50), y2: y(50), stroke: 'var(--border, #ccc)', 'vector-effect': 'non-scaling-stroke' }),
      poly('max', 'hm-max', '1 3', 1),
      poly('p90', 'hm-p90', '4 3', 1),
      poly('avg', 'hm-avg-line', null, 2));
    const tip = h('div', { class: 'hm-tip muted', style: { fontSize: '12px', minHeight: '1.2em' } }, '');
    el.addEventListener('mousemove', (e: Event) => {
      const r = (el as Element).getBoundingClientRect();
      const t = from + ((((e as MouseEvent).clientX - r.left) / Math.max(1, r.width)) * span);
      let best: MetricsBucket | null = null;
      for (const b of m.series) if (!best || Math.abs(b.t - t) < Math.abs(best.t - t)) best = b;
      if (best) {
        const st = best[metric];
        tip.textContent = `${fmtDateTime(best.t)} · avg ${pct(st.avg)}` + (st.p50 != null ? ` · p50 ${pct(st.p50)} · p90 ${pct(st.p90)} · p99 ${pct(st.p99)} · max ${pct(st.max)}` : '') +
          ` · ${fmtInt(best.hosts)} hosts`;
      }
    });
    return h('figure', { class: 'hm-fig', dataset: { metric }, style: { margin: 0 } },
      h('figcaption', { style: { fontSize: '12px' } }, title, h('span', { class: 'muted' }, ' — avg (solid), p90 (dashed), max (dotted); 0–100 %, grid line at 50 %')),
      el, tip);
  }
}
