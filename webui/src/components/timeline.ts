// Timeline of samples over the selected range; dragging selects a sub-range.

import { h, fmtDateTime, fmtInt } from '../dom';
import type { Timeline } from '../api';

const HEIGHT = 64;

/** TimelineChart draws sample counts per step and reports drag selections. */
export class TimelineChart {
  readonly el: HTMLDivElement;
  private canvas: HTMLCanvasElement;
  private tip: HTMLDivElement;
  private data: Timeline | null = null;
  private from = 0;
  private to = 1;
  private drag: { x0: number; x1: number } | null = null;
  private ro: ResizeObserver;
  private raf = 0;

  constructor(private onSelect: (from: number, to: number) => void) {
    this.canvas = h('canvas', { class: 'tl-canvas', 'aria-label': 'samples over time (drag to zoom)' });
    this.tip = h('div', { class: 'tl-tip', hidden: true });
    this.el = h('div', { class: 'timeline' }, this.canvas, this.tip);
    this.canvas.addEventListener('mousedown', (e) => {
      const x = this.x(e);
      this.drag = { x0: x, x1: x };
      const up = (ev: MouseEvent) => {
        window.removeEventListener('mouseup', up);
        window.removeEventListener('mousemove', mv);
        const d = this.drag;
        this.drag = null;
        this.draw();
        if (!d) return;
        const a = Math.min(d.x0, d.x1);
        const b = Math.max(d.x0, d.x1);
        if (b - a < 3) return;
        this.onSelect(Math.floor(this.timeAt(a)), Math.ceil(this.timeAt(b)));
        ev.preventDefault();
      };
      const mv = (ev: MouseEvent) => {
        if (this.drag) { this.drag.x1 = this.x(ev); this.schedule(); }
      };
      window.addEventListener('mouseup', up);
      window.addEventListener('mousemove', mv);
      e.preventDefault();
    });
    this.canvas.addEventListener('mousemove', (e) => this.hover(e));
    this.canvas.addEventListener('mouseleave', () => { this.tip.hidden = true; });
    this.ro = new ResizeObserver(() => this.schedule());
    this.ro.observe(this.el);
  }

  /** set replaces the data and the displayed range. */
  set(data: Timeline | null, from: number, to: number): void {
    this.data = data && { step: data.step, points: data.points || [] };
    this.from = from;
    this.to = Math.max(to, from + 1);
    this.schedule();
  }

  /** destroy detaches observers. */
  destroy(): void { this.ro.disconnect(); }

  /** redraw repaints (e.g. after a theme change). */
  redraw(): void { this.schedule(); }

  private schedule(): void {
    if (this.raf) return;
    this.raf = requestAnimationFrame(() => { this.raf = 0; this.draw(); });
  }

  private x(e: MouseEvent): number {
    const r = this.canvas.getBoundingClientRect();
    return Math.max(0, Math.min(r.width, e.clientX - r.left));
  }

  private timeAt(x: number): number {
    const w = this.canvas.clientWidth || 1;
    return this.from + (x / w) * (this.to - this.from);
  }

  private hover(e: MouseEvent): void {
    const d = this.data;
    if (!d || !d.points.length) return;
    const t = this.timeAt(this.x(e));
    let best = d.points[0];
    for (const p of d.points) if (Math.abs(p[0] - t) < Math.abs(best[0] - t)) best = p;
    this.tip.textContent = `${fmtDateTime(best[0])} · ${fmtInt(best[1])} samples`;
    this.tip.hidden = false;
    const r = this.canvas.getBoundingClientRect();
    this.tip.style.left = Math.min(e.clientX - r.left + 8, r.width - 160) + 'px';
  }

  private draw(): void {
    const c = this.canvas;
    const w = Math.max(1, this.el.clientWidth);
    const dpr = window.devicePixelRatio || 1;
    if (c.width !== Math.round(w * dpr) || c.height !== Math.round(HEIGHT * dpr)) {
      c.width = Math.round(w * dpr);
      c.height = Math.round(HEIGHT * dpr);
      c.style.width = w + 'px';
      c.style.height = HEIGHT + 'px';
    }
    const ctx = c.getContext('2d')!;
    const cs = getComputedStyle(document.documentElement);
    const col = (n: string, d: string) => cs.getPropertyValue(n).trim() || d;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, w, HEIGHT);
    const d = this.data;
    const span = this.to - this.from;
    const plotH = HEIGHT - 14;
    const plotTop = 13; // room for the "max" label
    ctx.fillStyle = col('--muted', '#888');
    ctx.font = '10px system-ui, sans-serif';
    ctx.textBaseline = 'bottom';
    ctx.fillText(fmtDateTime(this.from), 2, HEIGHT);
    const endLabel = fmtDateTime(this.to);
    ctx.fillText(endLabel, w - ctx.measureText(endLabel).width - 2, HEIGHT);
    if (d && d.points.length) {
      let max = 1;
      for (const p of d.points) if (p[1] > max) max = p[1];
      const step = d.step > 0 ? d.step : span / Math.max(d.points.length, 1);
      const bw = Math.max(1, (step / span) * w - 1);
      ctx.fillStyle = col('--accent', '#e4572e');
      for (const [t, v] of d.points) {
        const x = ((t - this.from) / span) * w;
        const bh = (v / max) * (plotH - plotTop);
        ctx.fillRect(x, plotH - bh, bw, bh);
      }
      ctx.fillStyle = col('--muted', '#888');
      ctx.textBaseline = 'top';
      ctx.fillText(`max ${fmtInt(max)}`, 2, 0);
    } else {
      ctx.fillStyle = col('--muted', '#888');
      ctx.textBaseline = 'middle';
      ctx.fillText(d ? 'no samples in this range' : 'loading…', 6, plotH / 2);
    }
    ctx.fillStyle = col('--border', '#ccc');
    ctx.fillRect(0, plotH, w, 1);
    if (this.drag) {
      const a = Math.min(this.drag.x0, this.drag.x1);
      const b = Math.max(this.drag.x0, this.drag.x1);
      ctx.fillStyle = col('--selection', 'rgba(60,120,255,0.25)');
      ctx.fillRect(a, 0, b - a, plotH);
    }
  }
}
