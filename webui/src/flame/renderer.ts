// FlameGraph draws a FlameModel on a <canvas>. A full render walks only the
// rows under the zoomed node, binary-searches each row for the visible range,
// merges runs of nodes narrower than half a pixel into one sliver (and skips
// their descendants a pixel at a time), fills the rectangles with one path
// per colour, edges on device pixels, and draws the labels last with one fill
// style. Hover only moves an outline element over the canvas. All redraws go
// through requestAnimationFrame; window.__flamestream carries the timings.
//
// Deep trees: a tree up to MAX_FULL_H pixels tall is drawn whole. A deeper
// one (a recursion 100,000 frames deep is 1.8 million pixels) would need a
// canvas far past the browser's limits (it silently scales the backing store
// down and the whole graph blurs), so the graph element becomes a scrolling
// viewport about a window tall: the canvas stays the viewport's size
// (position: sticky), a spacer gives the scroll range, and a render draws
// only the rows in view. Hit-testing and the hover outline work in content
// coordinates (scroll offset included), so they need no special case.

import { FlameModel, lowerBoundEnd, lastStartAtOrBefore } from './model';
import { diffPalette, diffBucket, SHADES, shadeColor, shadeOf, suffixOf, runtimeOf } from './colors';
import { debug } from '../debug';
import { h, fmtInt, fmtPct, replace } from '../dom';

/** ROW_H is the height of one stack level in CSS pixels. */
export const ROW_H = 18;
/** MIN_W is the narrowest node drawn on its own; narrower ones merge into slivers. */
export const MIN_W = 0.5;
const LABEL_MIN = 22;
/** MAX_FULL_H is the tallest graph (CSS pixels, 227 rows) drawn whole; deeper ones scroll inside a viewport. */
export const MAX_FULL_H = 4096;
/**
 * MAX_SIDE and MAX_AREA bound the canvas backing store (device pixels): every
 * current browser takes 16384 a side, and the area stays far below Chrome's
 * 268M and Safari's 16.7M-pixel limits' worst cases scaled to this width.
 */
export const MAX_SIDE = 16384;
export const MAX_AREA = 1 << 25;

/** deepViewH is the viewport height of a deep graph: the window less the page chrome, within sane bounds. */
function deepViewH(): number {
  return Math.max(360, Math.min(MAX_FULL_H, Math.round(window.innerHeight - 140)));
}

/** FONT is the label font (monospace so truncation needs no per-label measuring). */
export const FONT = '11.5px ui-monospace, SFMono-Regular, Menlo, Consolas, "DejaVu Sans Mono", monospace';

// Fixed palette slots; runtime shades are appended after them on demand.
const P_OTHER = 0;
const P_MATCH = 1;
const P_ROOT = 2;
const P_SLIVER = 3;
const P_DIFF = 4;

/** LayoutSink receives the visible layout (used by the canvas and SVG renderers). */
export interface LayoutSink {
  rect(i: number, x: number, y: number, w: number, ancestor: boolean): void;
  sliver(x: number, y: number, w: number, matched: boolean): void;
}

/** Theme holds the colours read from CSS custom properties. */
export interface Theme {
  bg: string; text: string; sliver: string; other: string; match: string; root: string; outline: string; dark: boolean;
}

function readTheme(el: Element): Theme {
  const cs = getComputedStyle(el);
  const v = (n: string, d: string) => cs.getPropertyValue(n).trim() || d;
  return {
    bg: v('--graph-bg', '#ffffff'),
    text: v('--graph-text', '#1d1d1f'),
    sliver: v('--graph-sliver', '#b9bdc4'),
    other: v('--graph-other', '#9aa0a6'),
    match: v('--graph-match', '#d23fd6'),
    root: v('--graph-root', '#c8ccd2'),
    outline: v('--graph-outline', '#111'),
    dark: v('--is-dark', '0') === '1',
  };
}

function growF64(a: Float64Array): Float64Array {
  const b = new Float64Array(a.length * 2);
  b.set(a);
  return b;
}

/** FlameGraphCallbacks connect the graph to its page. */
export interface FlameGraphCallbacks {
  onZoom?(i: number): void;
  onOther?(i: number): void;
  onHover?(i: number): void;
}

export class FlameGraph {
  readonly el: HTMLDivElement;
  readonly canvas: HTMLCanvasElement;
  private hl: HTMLDivElement;
  private ctx: CanvasRenderingContext2D;
  private tip: HTMLDivElement;
  model: FlameModel | null = null;
  zoom = 0;
  /** flipped draws the root at the bottom (flame); otherwise at the top (icicle). */
  flipped = false;
  private ancestors = new Int32Array(0);
  private mask: Uint8Array | null = null;
  private hover = -1;
  private spacer: HTMLDivElement;
  private cssW = 0;
  private cssH = 0; // visible height: the zoomed subtree, or the viewport of a deep tree
  private contentH = 0; // height of the zoomed subtree (the scroll range of a deep tree)
  private canvasH = 0; // canvas CSS height: the whole tree, or the viewport of a deep tree
  private deep = false; // the tree is taller than MAX_FULL_H: scroll inside the graph
  private top = 0; // scroll offset of the rows drawn (0 unless deep)
  private pendingScroll = false; // scroll to the zoomed node at the next render
  private dpr = 1;
  private raf = 0;
  private needFull = false;
  private needOverlay = false;
  /** pal holds every fill style by index; nodeColor caches a node's index + 1. */
  private pal: string[] = [];
  private runtimeBase = new Map<string, number>();
  private nodeColor = new Int32Array(0);
  private diffIdx: Uint8Array | null = null;
  // Rectangles of the frame being drawn, bucketed by colour before filling.
  private rx = new Float32Array(8192);
  private ry = new Float32Array(8192);
  private rw = new Float32Array(8192);
  private rc = new Int32Array(8192);
  private order = new Int32Array(8192);
  // Narrow value ranges of the previous and current row (see layout).
  private regA: Float64Array = new Float64Array(1024);
  private regB: Float64Array = new Float64Array(1024);
  theme: Theme;
  private charW = 7;
  private labels = new Float64Array(4 * 1024);
  private ro: ResizeObserver;
  private onWindowResize = () => { if (this.deep) this.invalidate(); };
  private cb: FlameGraphCallbacks;

  constructor(cb: FlameGraphCallbacks = {}) {
    this.cb = cb;
    this.canvas = h('canvas', { class: 'fg-canvas', 'aria-label': 'flame graph' });
    this.hl = h('div', { class: 'fg-hl', hidden: true });
    this.tip = h('div', { class: 'fg-tip', role: 'tooltip', hidden: true });
    this.spacer = h('div', { class: 'fg-spacer' });
    this.el = h('div', { class: 'fg' }, this.canvas, this.spacer, this.hl, this.tip);
    this.ctx = this.canvas.getContext('2d', { alpha: false })!;
    this.theme = readTheme(document.documentElement);
    this.resetPalette();
    // Load the label font now, while the tree is being fetched.
    this.ctx.font = FONT;
    this.charW = this.ctx.measureText('MMMMMMMMMM').width / 10 || 7;
    this.canvas.addEventListener('mousemove', (e) => this.onMove(e));
    this.canvas.addEventListener('mouseleave', () => this.setHover(-1, 0, 0));
    this.canvas.addEventListener('click', (e) => this.onClick(e));
    // A deep graph scrolls inside its element: draw the rows that came into view.
    this.el.addEventListener('scroll', () => {
      if (!this.deep || this.el.scrollTop === this.top) return;
      this.setHover(-1, 0, 0);
      this.invalidate();
    }, { passive: true });
    // Only width changes need a render: the height is ours (set by resize).
    this.ro = new ResizeObserver(() => { if (this.el.clientWidth !== this.cssW) this.invalidate(); });
    this.ro.observe(this.el);
    // A deep graph's viewport follows the window's height, which the observer does not see.
    window.addEventListener('resize', this.onWindowResize);
    debug.locate = (name) => this.locate(name);
    debug.renderNow = () => this.renderNow();
    debug.zoomToIndex = (i) => this.cb.onZoom?.(i);
    debug.hoverAt = (x, y) => this.hoverClient(x, y);
    debug.scrollToNode = (i) => this.scrollToNode(i);
  }

  /** destroy detaches observers. */
  destroy(): void {
    this.ro.disconnect();
    window.removeEventListener('resize', this.onWindowResize);
    if (this.raf) cancelAnimationFrame(this.raf);
    this.raf = 0;
  }

  /** setModel replaces the data and resets zoom, search and hover. */
  setModel(m: FlameModel | null): void {
    this.model = m;
    this.mask = null;
    this.hover = -1;
    this.tip.hidden = true;
    this.diffIdx = null;
    if (m && m.base) this.computeDiff(m);
    this.resetPalette();
    this.zoom = 0;
    this.ancestors = new Int32Array(0);
    this.pendingScroll = true;
    this.invalidate();
  }

  private computeDiff(m: FlameModel): void {
    const base = m.base!;
    const tot = m.total || m.value[0] || 1;
    const btot = m.baseTotal || base[0] || 1;
    const delta = new Float64Array(m.n);
    let max = 0;
    for (let i = 0; i < m.n; i++) {
      const d = m.value[i] / tot - base[i] / btot;
      delta[i] = d;
      if (Math.abs(d) > max) max = Math.abs(d);
    }
    // Below a 0.1% share change everything stays pale.
    max = Math.max(max, 0.001);
    const idx = new Uint8Array(m.n);
    for (let i = 0; i < m.n; i++) idx[i] = diffBucket(delta[i] / max);
    this.diffIdx = idx;
  }

  private resetPalette(): void {
    const th = this.theme;
    this.pal = [th.other, th.match, th.root, th.sliver, ...diffPalette(th.dark)];
    this.runtimeBase.clear();
    this.nodeColor = new Int32Array(this.model ? this.model.n : 0);
  }

  /** colorIndex returns node i's palette slot. */
  private colorIndex(i: number): number {
    const m = this.model!;
    if (m.other[i]) return P_OTHER;
    if (this.mask !== null && this.mask[m.nameId[i]]) return P_MATCH;
    if (this.diffIdx !== null) return P_DIFF + this.diffIdx[i];
    if (i === 0) return P_ROOT;
    let c = this.nodeColor[i];
    if (c === 0) {
      const name = m.nameOf[i];
      const key = suffixOf(name);
      let base = this.runtimeBase.get(key);
      if (base === undefined) {
        base = this.pal.length;
        const r = runtimeOf(key);
        for (let k = 0; k < SHADES; k++) this.pal.push(shadeColor(r, k, this.theme.dark));
        this.runtimeBase.set(key, base);
      }
      c = this.nodeColor[i] = base + shadeOf(name) + 1;
    }
    return c - 1;
  }

  /** setZoom zooms to node i (0 = whole tree). */
  setZoom(i: number): void {
    const m = this.model;
    if (!m || i < 0 || i >= m.n) i = 0;
    this.zoom = i;
    const anc = new Int32Array(m ? m.depth[i] : 0);
    if (m) for (let j = m.parent[i], d = m.depth[i] - 1; j >= 0 && d >= 0; j = m.parent[j], d--) anc[d] = j;
    this.ancestors = anc;
    this.hover = -1;
    this.tip.hidden = true;
    this.pendingScroll = true;
    this.invalidate();
  }

  /** setFlipped switches between icicle (false) and flame (true). */
  setFlipped(f: boolean): void {
    if (this.flipped === f) return;
    this.flipped = f;
    this.pendingScroll = true;
    this.invalidate();
  }

  /** setMask highlights every node whose name id is set in mask (null clears). */
  setMask(mask: Uint8Array | null): void {
    this.mask = mask;
    this.invalidate();
  }

  /** themeChanged re-reads colours from CSS. */
  themeChanged(): void {
    this.theme = readTheme(document.documentElement);
    this.resetPalette();
    this.invalidate();
  }

  /** invalidate schedules a full render on the next animation frame. */
  invalidate(): void {
    this.needFull = true;
    this.schedule();
  }

  private schedule(): void {
    if (this.raf) return;
    this.raf = requestAnimationFrame(() => {
      this.raf = 0;
      if (this.needFull) this.renderNow();
      else if (this.needOverlay) this.drawOverlay();
    });
  }

  /** renderNow renders synchronously and returns the time it took in ms. */
  renderNow(): number {
    const t0 = performance.now();
    this.needFull = false;
    this.resize();
    debug.resizeMs = performance.now() - t0;
    this.drawFull();
    this.drawOverlay();
    const ms = performance.now() - t0;
    debug.lastRenderMs = ms;
    debug.renders++;
    return ms;
  }

  /**
   * resize sizes the canvas. A tree that fits MAX_FULL_H gets a canvas for its
   * whole depth once per model and width, and a zoom only changes the height
   * of the clipping container, because reallocating the backing store on
   * every zoom costs more than the drawing. A deeper tree gets a canvas the
   * size of its viewport and a spacer for the scroll range. The device pixel
   * ratio drops only as far as the canvas limits require.
   */
  private resize(): void {
    const m = this.model;
    const el = this.el;
    const w = Math.max(1, el.clientWidth);
    const full = (m ? m.maxDepth + 1 : 1) * ROW_H;
    const content = (m ? m.maxSub[this.zoom] + 1 : 1) * ROW_H;
    const deep = full > MAX_FULL_H;
    const view = deep ? Math.min(content, deepViewH()) : content;
    const canvasH = deep ? view : full;
    const dpr = Math.min(window.devicePixelRatio || 1, 3, MAX_SIDE / canvasH, MAX_SIDE / w, Math.sqrt(MAX_AREA / (w * canvasH)));
    if (deep !== this.deep) {
      this.deep = deep;
      el.classList.toggle('deep', deep);
      if (!deep) el.scrollTop = 0;
    }
    if (w !== this.cssW || canvasH !== this.canvasH || dpr !== this.dpr) {
      this.cssW = w;
      this.canvasH = canvasH;
      this.dpr = dpr;
      const c = this.canvas;
      c.width = Math.round(w * dpr);
      c.height = Math.round(canvasH * dpr);
      c.style.width = w + 'px';
      c.style.height = canvasH + 'px';
      const ctx = this.ctx;
      ctx.font = FONT;
      this.charW = ctx.measureText('MMMMMMMMMM').width / 10 || 7;
    }
    if (view !== this.cssH || content !== this.contentH) {
      this.cssH = view;
      this.contentH = content;
      el.style.height = view + 'px';
      this.spacer.style.height = deep ? content - view + 'px' : '0';
    }
    if (deep && this.pendingScroll && m) {
      // Show the zoomed node (or the root) with a few of its ancestors.
      const zd = m.depth[this.zoom];
      const y = this.rowY(zd);
      el.scrollTop = this.flipped ? y + 3 * ROW_H - view : y - 2 * ROW_H;
    }
    this.pendingScroll = false;
    this.top = deep ? Math.max(0, Math.min(el.scrollTop, content - view)) : 0;
    debug.graphView = { deep, top: this.top, height: view, content, canvasW: this.canvas.width, canvasH: this.canvas.height };
  }

  /** toPNG renders the visible part of the graph as a PNG blob. */
  toPNG(done: (b: Blob | null) => void): void {
    const out = document.createElement('canvas');
    out.width = this.canvas.width;
    out.height = Math.round(this.cssH * this.dpr);
    out.getContext('2d')!.drawImage(this.canvas, 0, 0);
    out.toBlob(done, 'image/png');
  }

  /** rowY is the top of a depth's row in content coordinates (a deep graph's scroll offset not subtracted). */
  rowY(d: number): number {
    const m = this.model;
    const last = m ? m.maxSub[this.zoom] : 0;
    return (this.flipped ? last - d : d) * ROW_H;
  }

  /** width is the drawing width in CSS pixels. */
  get width(): number { return this.cssW; }
  /** height is the drawing height in CSS pixels (the viewport of a deep graph). */
  get height(): number { return this.cssH; }
  /** viewTop is the scroll offset of the rows drawn (0 unless the graph is deep). */
  get viewTop(): number { return this.top; }

  /**
   * visibleDepths returns the depths whose rows intersect the drawing
   * [top, top + height): all of them unless the graph is deep.
   */
  visibleDepths(): [number, number] {
    const m = this.model;
    const last = m ? m.maxSub[this.zoom] : 0;
    const r0 = Math.max(0, Math.floor(this.top / ROW_H));
    const r1 = Math.min(last, Math.ceil((this.top + Math.max(this.cssH, ROW_H)) / ROW_H) - 1);
    return this.flipped ? [Math.max(0, last - r1), last - r0] : [r0, r1];
  }

  /**
   * layout emits the visible rectangles for a drawing of width W. Nodes
   * narrower than MIN_W merge into slivers. The value ranges of those merged
   * runs are kept per row: every node of the next row that starts inside one
   * descends from a narrow node, so it is narrow too and the walk skips
   * through such a range a pixel at a time by binary search instead of
   * visiting each node (with a search mask active every node is visited so
   * that matches inside slivers still show). Only the rows in view are laid
   * out (see visibleDepths), and y is relative to the top of the view.
   */
  layout(sink: LayoutSink, W: number): void {
    const m = this.model;
    if (!m || m.n === 0) return;
    const z = this.zoom;
    const zs = m.start[z];
    const zv = m.value[z] || 1;
    const ze = zs + zv;
    const zd = m.depth[z];
    const scale = W / zv;
    const px = 1 / scale; // one pixel in samples
    const mask = this.mask;
    const jump = mask === null;
    const anc = this.ancestors;
    const [dLo, dHi] = this.visibleDepths();
    const top = this.top;
    for (let d = dLo; d < zd && d <= dHi; d++) sink.rect(anc[d], 0, this.rowY(d) - top, W, true);
    const last = Math.min(m.maxSub[z], dHi);
    const start = m.start;
    const value = m.value;
    const nameId = m.nameId;
    let prev = this.regA;
    let cur = this.regB;
    let np = 0;
    for (let d = Math.max(zd, dLo); d <= last; d++) {
      const row = m.row(d);
      const y = this.rowY(d) - top;
      const n = row.length;
      let nc = 0;
      let ri = 0;
      // The current run of narrow nodes, in samples; runS < 0 when none.
      let runS = -1;
      let runE = 0;
      let runHit = false;
      let k = lowerBoundEnd(m, row, zs);
      while (k < n) {
        const i = row[k];
        const s = start[i];
        if (s >= ze) break;
        let segE: number;
        let next: number;
        let hit = false;
        if (jump) {
          while (ri < np && prev[2 * ri + 1] <= s) ri++;
        }
        if (jump && ri < np && prev[2 * ri] <= s) {
          // Inside a narrow range of the row above: jump one pixel ahead.
          const to = Math.min(s + px, prev[2 * ri + 1]);
          let lo = k + 1;
          let hi = n;
          while (lo < hi) {
            const mid = (lo + hi) >>> 1;
            if (start[row[mid]] < to) lo = mid + 1;
            else hi = mid;
          }
          next = lo;
          const j = row[lo - 1];
          segE = start[j] + value[j];
        } else {
          const v = value[i];
          const w = v * scale;
          if (w >= MIN_W) {
            if (runS >= 0) {
              if ((runE - runS) * scale >= MIN_W) sink.sliver((runS - zs) * scale, y, (runE - runS) * scale, runHit);
              if (nc * 2 + 2 > cur.length) cur = this.regB = growF64(cur);
              cur[nc * 2] = runS;
              cur[nc * 2 + 1] = runE;
              nc++;
              runS = -1;
            }
            sink.rect(i, (s - zs) * scale, y, w, false);
            k++;
            continue;
          }
          if (v <= 0) {
            k++;
            continue;
          }
          next = k + 1;
          segE = s + v;
          hit = mask !== null && mask[nameId[i]] === 1;
        }
        if (runS >= 0 && s - runE < px) {
          if (segE > runE) runE = segE;
          if (hit) runHit = true;
        } else {
          if (runS >= 0) {
            if ((runE - runS) * scale >= MIN_W) sink.sliver((runS - zs) * scale, y, (runE - runS) * scale, runHit);
            if (nc * 2 + 2 > cur.length) cur = this.regB = growF64(cur);
            cur[nc * 2] = runS;
            cur[nc * 2 + 1] = runE;
            nc++;
          }
          runS = s;
          runE = segE;
          runHit = hit;
        }
        k = next;
      }
      if (runS >= 0) {
        if ((runE - runS) * scale >= MIN_W) sink.sliver((runS - zs) * scale, y, (runE - runS) * scale, runHit);
        if (nc * 2 + 2 > cur.length) cur = this.regB = growF64(cur);
        cur[nc * 2] = runS;
        cur[nc * 2 + 1] = runE;
        nc++;
      }
      const t = prev;
      prev = cur;
      cur = t;
      this.regA = prev;
      this.regB = cur;
      np = nc;
    }
  }

  /** fill returns the fill colour of node i. */
  fill(i: number): string {
    return this.pal[this.colorIndex(i)];
  }

  /** fit truncates a label to the available width ('' when nothing fits). */
  fit(name: string, avail: number): string {
    const max = Math.floor(avail / this.charW);
    if (max < 2) return '';
    if (name.length <= max) return name;
    return name.slice(0, max - 1) + '…';
  }

  private drawFull(): void {
    const ctx = this.ctx;
    const W = this.cssW;
    const th = this.theme;
    ctx.setTransform(this.dpr, 0, 0, this.dpr, 0, 0);
    ctx.globalAlpha = 1;
    ctx.fillStyle = th.bg;
    ctx.fillRect(0, 0, W, this.canvasH);
    const m = this.model;
    if (!m) {
      debug.nodesDrawn = 0;
      return;
    }
    let nr = 0;
    let nl = 0;
    let na = 0;
    let labels = this.labels;
    const rh = ROW_H - 1;
    const push = (x: number, y: number, w: number, c: number) => {
      if (nr === this.rx.length) this.grow();
      this.rx[nr] = x;
      this.ry[nr] = y;
      this.rw[nr] = w;
      this.rc[nr] = c;
      nr++;
    };
    const sink: LayoutSink = {
      rect: (i, x, y, w, ancestor) => {
        if (ancestor) {
          na++;
          ctx.globalAlpha = 0.55;
          ctx.fillStyle = this.fill(i);
          ctx.fillRect(x, y, w - 1, rh);
          ctx.globalAlpha = 1;
        } else {
          push(x, y, w >= 3 ? w - 1 : w, this.colorIndex(i));
        }
        if (w >= LABEL_MIN) {
          if (nl + 4 > labels.length) {
            const bigger = new Float64Array(labels.length * 2);
            bigger.set(labels);
            labels = this.labels = bigger;
          }
          labels[nl++] = i;
          labels[nl++] = x;
          labels[nl++] = y;
          labels[nl++] = w;
        }
      },
      sliver: (x, y, w, matched) => push(x, y, w, matched ? P_MATCH : P_SLIVER),
    };
    const tl = performance.now();
    this.layout(sink, W);
    debug.layoutMs = performance.now() - tl;
    // Bucket the rectangles by colour with a counting sort.
    const pal = this.pal;
    const counts = new Int32Array(pal.length + 1);
    const rc = this.rc;
    for (let k = 0; k < nr; k++) counts[rc[k] + 1]++;
    for (let c = 0; c < pal.length; c++) counts[c + 1] += counts[c];
    const order = this.order;
    const next = counts.slice(0, pal.length);
    for (let k = 0; k < nr; k++) order[next[rc[k]]++] = k;
    const rx = this.rx;
    const ry = this.ry;
    const rw = this.rw;
    // One path per colour (far fewer canvas calls than a fillRect per node),
    // edges snapped to device pixels: unaligned edges make the rasterizer
    // anti-alias every rectangle, which costs more than the JavaScript.
    const dpr = this.dpr;
    const hh = Math.round(rh * dpr);
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    for (let c = 0; c < pal.length; c++) {
      const from = counts[c];
      const to = counts[c + 1];
      if (from === to) continue;
      ctx.fillStyle = pal[c];
      ctx.beginPath();
      for (let k = from; k < to; k++) {
        const j = order[k];
        const x0 = Math.round(rx[j] * dpr);
        const x1 = Math.round((rx[j] + rw[j]) * dpr);
        ctx.rect(x0, Math.round(ry[j] * dpr), x1 > x0 ? x1 - x0 : 1, hh);
      }
      ctx.fill();
    }
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    const t0 = performance.now();
    debug.fillMs = t0 - tl - debug.layoutMs;
    ctx.font = FONT;
    ctx.textBaseline = 'middle';
    ctx.fillStyle = th.text;
    const half = ROW_H / 2;
    for (let k = 0; k < nl; k += 4) {
      const x = labels[k + 1];
      const text = this.fit(m.name(labels[k]), labels[k + 3] - 6);
      if (text) ctx.fillText(text, x < 0 ? 3 : x + 3, labels[k + 2] + half);
    }
    debug.textMs = performance.now() - t0;
    debug.labels = nl / 4;
    debug.nodesDrawn = nr + na;
  }

  private grow(): void {
    const n = this.rx.length * 2;
    const f = (a: Float32Array) => { const b = new Float32Array(n); b.set(a); return b; };
    this.rx = f(this.rx);
    this.ry = f(this.ry);
    this.rw = f(this.rw);
    const c = new Int32Array(n);
    c.set(this.rc);
    this.rc = c;
    this.order = new Int32Array(n);
  }

  /** drawOverlay moves the hover outline (an element over the canvas, so hover never repaints the graph). */
  private drawOverlay(): void {
    const t0 = performance.now();
    this.needOverlay = false;
    const r = this.hover >= 0 ? this.rectOf(this.hover) : null;
    const hl = this.hl;
    if (!r) {
      hl.hidden = true;
    } else {
      const x = Math.max(r.x, 0);
      hl.style.transform = `translate(${x}px, ${r.y}px)`;
      hl.style.width = Math.max(Math.min(r.w, this.cssW - x), 2) + 'px';
      hl.hidden = false;
    }
    debug.lastOverlayMs = performance.now() - t0;
    debug.overlayRenders++;
  }

  /** rectOf returns node i's rectangle in canvas CSS pixels, or null when it is not shown. */
  rectOf(i: number): { x: number; y: number; w: number; h: number } | null {
    const m = this.model;
    if (!m || i < 0 || i >= m.n) return null;
    const z = this.zoom;
    const d = m.depth[i];
    const zd = m.depth[z];
    if (d < zd) return this.ancestors[d] === i ? { x: 0, y: this.rowY(d), w: this.cssW, h: ROW_H } : null;
    const zs = m.start[z];
    const zv = m.value[z] || 1;
    if (m.start[i] < zs || m.start[i] + m.value[i] > zs + zv || d > m.maxSub[z]) return null;
    const scale = this.cssW / zv;
    return { x: (m.start[i] - zs) * scale, y: this.rowY(d), w: m.value[i] * scale, h: ROW_H };
  }

  /** hit returns the node under content coordinates (x, y) (see toContent), or -1. */
  hit(x: number, y: number): number {
    const m = this.model;
    if (!m || x < 0 || x >= this.cssW || y < 0) return -1;
    const z = this.zoom;
    const last = m.maxSub[z];
    const r = Math.floor(y / ROW_H);
    const d = this.flipped ? last - r : r;
    const zd = m.depth[z];
    if (d < 0 || d > last) return -1;
    if (d < zd) return this.ancestors[d];
    const zs = m.start[z];
    const v = zs + (x / this.cssW) * (m.value[z] || 1);
    const row = m.row(d);
    const k = lastStartAtOrBefore(m, row, v);
    if (k < 0) return -1;
    const i = row[k];
    return v < m.start[i] + m.value[i] ? i : -1;
  }

  /** hitClient returns the node at viewport coordinates: rows are laid out in the graph element's content, which scrolls when the graph is deep. */
  private hitClient(cx: number, cy: number): number {
    const r = this.el.getBoundingClientRect();
    return this.hit(cx - r.left - this.el.clientLeft, cy - r.top - this.el.clientTop + this.top);
  }

  private onMove(e: MouseEvent): void {
    this.setHover(this.hitClient(e.clientX, e.clientY), e.clientX, e.clientY);
  }

  /** hoverClient hovers the node at viewport coordinates (used by tests and the benchmark). */
  hoverClient(cx: number, cy: number): void {
    this.setHover(this.hitClient(cx, cy), cx, cy);
  }

  private onClick(e: MouseEvent): void {
    const i = this.hitClient(e.clientX, e.clientY);
    if (i < 0 || !this.model) return;
    if (this.model.other[i]) this.cb.onOther?.(i);
    else this.cb.onZoom?.(i);
  }

  private setHover(i: number, cx: number, cy: number): void {
    const m = this.model;
    if (i !== this.hover) {
      this.hover = i;
      this.needOverlay = true;
      this.schedule();
      this.canvas.style.cursor = i >= 0 ? 'pointer' : 'default';
      if (i < 0 || !m) {
        debug.hovered = null;
        this.tip.hidden = true;
      } else {
        const root = m.value[0] || 1;
        debug.hovered = {
          name: m.name(i), self: m.self[i], total: m.value[i], pct: m.value[i] / root, depth: m.depth[i],
          base: m.base ? m.base[i] : undefined,
        };
        this.fillTip(i);
      }
      this.cb.onHover?.(i);
    }
    if (i >= 0) this.placeTip(cx, cy);
  }

  private fillTip(i: number): void {
    const m = this.model!;
    const root = m.value[0] || 1;
    const rows: (HTMLElement | string)[] = [];
    if (m.other[i]) rows.push(h('div', { class: 'muted' }, 'Truncated siblings merged — click to load them'));
    rows.push(h('div', null, 'Total: ', h('b', null, fmtInt(m.value[i])), ` (${fmtPct(m.value[i] / root)} of root)`));
    rows.push(h('div', null, 'Self: ', h('b', null, fmtInt(m.self[i])), ` (${fmtPct(m.self[i] / root)})`));
    if (m.base) {
      const tot = m.total || root;
      const btot = m.baseTotal || m.base[0] || 1;
      const now = m.value[i] / tot;
      const was = m.base[i] / btot;
      const d = now - was;
      rows.push(h('div', null, 'Baseline: ', h('b', null, fmtInt(m.base[i])), ` (${fmtPct(was)})`));
      rows.push(h('div', { class: d > 0 ? 'up' : d < 0 ? 'down' : '' }, `Δ share: ${d > 0 ? '+' : ''}${fmtPct(d)}`));
    }
    replace(this.tip, h('div', { class: 'fg-tip-name' }, m.name(i)), rows);
    this.tip.hidden = false;
  }

  private placeTip(cx: number, cy: number): void {
    const t = this.tip;
    const tw = t.offsetWidth;
    const th = t.offsetHeight;
    let x = cx + 14;
    let y = cy + 16;
    if (x + tw > window.innerWidth - 4) x = Math.max(4, cx - tw - 14);
    if (y + th > window.innerHeight - 4) y = Math.max(4, cy - th - 12);
    t.style.transform = `translate(${x}px, ${y}px)`;
  }

  /**
   * locate returns the viewport rectangle of the widest shown node named name
   * (tests use it to click). In a deep graph a node outside the scrolled view
   * is not shown: scroll first (scrollToNode).
   */
  locate(name: string): { x: number; y: number; w: number; h: number } | null {
    const m = this.model;
    if (!m) return null;
    let best = -1;
    let bestW = 0;
    for (let i = 0; i < m.n; i++) {
      if (m.nameOf[i] !== name) continue;
      const r = this.rectOf(i);
      if (r && r.w > bestW && r.y >= this.top && r.y + r.h <= this.top + this.cssH) { best = i; bestW = r.w; }
    }
    if (best < 0) return null;
    const r = this.rectOf(best)!;
    const b = this.el.getBoundingClientRect();
    const x = Math.max(r.x, 0);
    return { x: b.left + this.el.clientLeft + x, y: b.top + this.el.clientTop + r.y - this.top, w: Math.min(r.w, this.cssW - x), h: r.h };
  }

  /** scrollToNode scrolls a deep graph so that node i's row is in view (a third of the way down); it returns false when i is not drawn. */
  scrollToNode(i: number): boolean {
    const r = this.rectOf(i);
    if (!r) return false;
    if (this.deep) {
      this.el.scrollTop = r.y - Math.round(this.cssH / 3);
      if (this.el.scrollTop !== this.top) this.renderNow();
    }
    return true;
  }
}
