// Profile and diff views: time range, timeline, filters, flame graph, top table, exports.

import { h, replace, fmtInt, fmtCount, fmtPct, fmtDateTime, errorBox, download, toLocalInput, fromLocalInput } from '../dom';
import { get, request, exportURL, ApiError, coveredRange } from '../api';
import type { Timeline, Top, FilterOptions, TreeNode } from '../api';
import { Page, setParams, navigate } from '../router';
import { debug } from '../debug';
import { isDark, onThemeChange } from '../theme';
import {
  readRange, readBaseRange, readFilters, filterParams, filterURLChanges, splitPath, Filters, Range,
  BASE_MODES, DEFAULT_MAX_NODES, VIEWS, readView,
} from '../state';
import { flatten, FlameModel } from '../flame/model';
import { FlameGraph } from '../flame/renderer';
import { toSVG } from '../flame/svg';
import { timeRangePicker } from '../components/timerange';
import { TimelineChart } from '../components/timeline';
import { filterBar } from '../components/filters';
import { topTable } from '../components/toptable';
import { legend } from '../components/legend';
import { servicePicker } from '../components/servicepick';
import { HostMetricsPanel } from '../components/hostmetrics';
import { FunctionsTable } from '../components/functable';
import { FunctionHistory } from '../components/funchistory';
import { StackViewBar, readStackView, stackViewParams, stackViewKey, pruneTree } from '../components/stackview';
import { CompareTable } from '../components/comparetable';

const TOP_LIMIT = 100;
/**
 * PATH_MAX_FRAMES and PATH_MAX_CHARS bound the frame paths spelled out in the
 * URL (zoom) or sent to the API (focus). A deeper node goes into the zoom URL
 * as its path key (FlameModel.pathKey), and its "other" child asks for a
 * bigger tree instead of a focus: a path 100,000 frames deep is megabytes,
 * past what browsers and servers take in a URL.
 */
const PATH_MAX_FRAMES = 200;
const PATH_MAX_CHARS = 4000;
/** CRUMBS_HEAD and CRUMBS_TAIL are the zoom crumbs shown at each end of a long zoom path. */
const CRUMBS_HEAD = 3;
const CRUMBS_TAIL = 6;
/** MAX_NODES_CAP is the largest node budget the page asks for (the API's limit is 2^20). */
const MAX_NODES_CAP = 1000000;

/** pathFits reports whether a frame path is short enough to spell out in a URL. */
function pathFits(p: string[]): boolean {
  if (p.length > PATH_MAX_FRAMES) return false;
  let n = 0;
  for (const f of p) n += f.length + 1;
  return n <= PATH_MAX_CHARS;
}

/** zoomParam is the zoom URL value of node i: its frame path, or its path key when the path is too long. */
export function zoomParam(m: FlameModel, i: number): string | null {
  if (i <= 0) return null;
  const p = m.path(i);
  return pathFits(p) ? p.join(';') : m.pathKey(i);
}

/** resolveZoom finds the node a zoom URL value names (a path key or a frame path), with how many frames matched. */
export function resolveZoom(m: FlameModel, z: string | null): number {
  if (z && z.startsWith('~')) {
    const i = m.findKey(z);
    if (i >= 0) return i;
  }
  return m.find(splitPath(z)).index;
}

/** matcher turns the search box into a predicate: /re/flags is a regular expression, anything else a case-insensitive substring. */
export function matcher(s: string): ((name: string) => boolean) | null {
  if (!s) return null;
  const re = /^\/(.+)\/([a-z]*)$/.exec(s);
  if (re) {
    try {
      const r = new RegExp(re[1], re[2].includes('i') ? re[2] : re[2] + 'i');
      return (n) => r.test(n);
    } catch { /* fall through to substring */ }
  }
  const lower = s.toLowerCase();
  return (n) => n.toLowerCase().includes(lower);
}

/** profilePage builds the profile (mode "profile") or diff (mode "diff") view. */
export function profilePage(url: URL, mode: 'profile' | 'diff'): Page {
  let q = url.searchParams;
  let destroyed = false;
  let model: FlameModel | null = null;
  let top: Top | null = null;
  let filterOpts: FilterOptions | null = null;
  let baseFilterOpts: FilterOptions | null = null;
  let dataKey = '';
  let graphKey = '';
  let topKey = '';
  let ctrl: AbortController | null = null;
  let graphCtrl: AbortController | null = null;
  let topCtrl: AbortController | null = null;
  let appliedSearch: string | null = null;
  let appliedModel: FlameModel | null = null;
  let range: Range = readRange(q);
  let commonParams: Record<string, string | number | string[]> = {};

  const graph = new FlameGraph({ onZoom: zoomTo, onOther: drillOther });
  const timeline = new TimelineChart((from, to) => setParams({ range: null, from: String(from), to: String(to), zoom: null }));
  const hostMetrics = new HostMetricsPanel();

  const serviceSlot = h('div', { class: 'service-pick' });
  const rangeSlot = h('div');
  const filterSlot = h('div');
  const baseSlot = h('div', { class: 'base-controls', hidden: mode !== 'diff' });
  const searchInput = h('input', { type: 'search', class: 'search', placeholder: 'Search frames (/ to focus, /regex/)', 'aria-label': 'search', value: q.get('search') || '' });
  const matched = h('span', { class: 'matched muted', 'aria-live': 'polite' });
  const orientBtn = h('button', { type: 'button', class: 'btn small', title: 'Flip orientation (f)', onclick: flip });
  const resetBtn = h('button', { type: 'button', class: 'btn small', title: 'Reset zoom (Esc)', onclick: reset }, 'Reset');
  const exportSlot = h('span', { class: 'exports' });
  const crumbs = h('nav', { class: 'crumbs', 'aria-label': 'zoom path' });
  const legendSlot = h('div');
  const status = h('div', { class: 'status muted' });
  const errorSlot = h('div');
  const topSlot = h('div', { class: 'top-wrap' });
  const help = helpDialog();
  // The functions table and a function's history (view=table|both, hist=NAME; see renderFunctions).
  const fnTable = new FunctionsTable({
    onSort: (s) => setParams({ tsort: s === 'total' ? null : s }, { replace: true }),
    onFilter: (f) => setParams({ tfilter: f || null }, { replace: true }),
    onSelect: (name) => setParams({ fn: name, hist: name }, { replace: true }),
    dark: isDark,
    // In table-only mode no graph names the processes: the table's reply does (see processes).
    onLoad: () => stackView.update(readStackView(q), processes(), hiddenNodes),
  });
  const fnHist = new FunctionHistory(() => setParams({ hist: null }, { replace: true }));
  // Runtime and process view (stackview.ts) and, in a diff, the A vs B table (comparetable.ts).
  const stackView = new StackViewBar((c) => setParams(c));
  let hiddenNodes = 0;
  const cmpTable = new CompareTable((s, o) => setParams({ csort: s, corder: o }, { replace: true }), (name) => setParams({ fn: name }, { replace: true }));
  const viewSlot = h('div', { class: 'segs view-switch', role: 'group', 'aria-label': 'view' });
  let split: HTMLElement;

  let searchTimer = 0;
  searchInput.addEventListener('input', () => {
    clearTimeout(searchTimer);
    searchTimer = window.setTimeout(() => setParams({ search: searchInput.value || null }, { replace: true }), 120);
  });

  const el = h('div', { class: 'page profile', dataset: { mode } },
    h('div', { class: 'toolbar' }, serviceSlot,
      h('div', { class: 'tabs' },
        h('a', { href: '#', class: 'tab' + (mode === 'profile' ? ' on' : ''), onclick: (e: Event) => { e.preventDefault(); switchMode('profile'); } }, 'Flame graph'),
        h('a', { href: '#', class: 'tab' + (mode === 'diff' ? ' on' : ''), onclick: (e: Event) => { e.preventDefault(); switchMode('diff'); } }, 'Diff')),
      rangeSlot,
      h('button', { type: 'button', class: 'btn small', title: 'Reload', onclick: () => { dataKey = ''; update(new URL(location.href)); } }, '↻ Refresh')),
    filterSlot, baseSlot, stackView.el, timeline.el, hostMetrics.el,
    h('div', { class: 'toolbar graph-tools' }, viewSlot, searchInput, matched, orientBtn, resetBtn,
      h('button', { type: 'button', class: 'btn small ghost', title: 'Keyboard shortcuts (?)', onclick: () => help.showModal() }, '?'),
      exportSlot),
    crumbs, errorSlot,
    split = h('div', { class: 'split' },
      h('section', { class: 'graph-col' }, h('div', { class: 'graph-head' }, legendSlot, status), h('div', { class: 'graph-wrap' }, graph.el)),
      h('aside', { class: 'side' }, h('h3', null, 'Top functions'), topSlot)),
    cmpTable.el, fnHist.el, fnTable.el,
    help);

  const offTheme = onThemeChange(() => { graph.themeChanged(); timeline.redraw(); renderLegend(); renderTop(); fnTable.rerender(); });
  const onKey = (e: KeyboardEvent) => keyboard(e);
  document.addEventListener('keydown', onKey);

  function keyboard(e: KeyboardEvent): void {
    const t = e.target as HTMLElement;
    const typing = t && (t.tagName === 'INPUT' || t.tagName === 'TEXTAREA' || t.tagName === 'SELECT' || t.isContentEditable);
    if (e.key === 'Escape') {
      if (help.open) return; // the dialog closes itself
      if (t === searchInput) {
        if (searchInput.value) { searchInput.value = ''; setParams({ search: null }, { replace: true }); }
        searchInput.blur();
      } else if (!typing) {
        reset();
      }
      return;
    }
    if (typing || e.ctrlKey || e.metaKey || e.altKey) return;
    if (e.key === '/') { e.preventDefault(); searchInput.focus(); searchInput.select(); }
    else if (e.key === 'f') { e.preventDefault(); flip(); }
    else if (e.key === '?') { e.preventDefault(); help.open ? help.close() : help.showModal(); }
  }

  function flip(): void {
    setParams({ orient: q.get('orient') === 'flame' ? null : 'flame' }, { replace: true });
  }

  function reset(): void {
    setParams({ zoom: null, focus: null, fn: null });
  }

  function zoomTo(i: number): void {
    if (!model) return;
    // A click on a frame also opens its function's history.
    setParams({ zoom: zoomParam(model, i), hist: i > 0 && !model.other[i] ? model.name(i) : q.get('hist') });
  }

  function drillOther(i: number): void {
    if (!model) return;
    const parent = model.parent[i];
    if (mode === 'diff') { zoomTo(i); return; }
    const focus = parent > 0 ? [...splitPath(q.get('focus')), ...model.path(parent)] : [];
    if (parent <= 0 || !pathFits(focus)) {
      // Truncated right under the root, or so deep that the path cannot go
      // in a URL: ask for a bigger tree instead, and stay on the parent.
      const cur = Number(q.get('maxNodes')) || DEFAULT_MAX_NODES;
      setParams({ maxNodes: String(Math.min(cur * 4, MAX_NODES_CAP)), zoom: zoomParam(model, parent) });
      return;
    }
    setParams({ focus: focus.join(';'), zoom: null });
  }

  function switchMode(to: 'profile' | 'diff'): void {
    const u = new URL(location.href);
    u.pathname = to === 'diff' ? '/diff' : '/profile';
    for (const k of ['zoom', 'focus', 'maxNodes']) u.searchParams.delete(k);
    navigate(u);
  }

  function changeService(name: string): void {
    const u = new URL(location.origin + location.pathname);
    for (const k of ['range', 'from', 'to', 'orient', 'base', 'base_from', 'base_to', 'view', 'tsort']) {
      const v = q.get(k);
      if (v) u.searchParams.set(k, v);
    }
    u.searchParams.set('service', name);
    navigate(u);
  }

  function currentKey(): string {
    const parts = [mode, q.get('service') || ''];
    const f = q.get('from');
    const t = q.get('to');
    parts.push(f && t ? `${f}-${t}` : q.get('range') || '1h');
    const filters = readFilters(q);
    parts.push(JSON.stringify(filters), stackViewKey(readStackView(q)), q.get('minw') || '');
    if (mode === 'diff') parts.push(q.get('base') || '', q.get('base_from') || '', q.get('base_to') || '', q.get('bf') || '', q.get('base_service') || '', JSON.stringify(readFilters(q, 'base_')));
    else parts.push(q.get('focus') || '', q.get('maxNodes') || '');
    return parts.join('|');
  }

  function baseParams(): Record<string, string | number | string[]> {
    const b = readBaseRange(q, range);
    const f = q.get('bf') === 'own' ? readFilters(q, 'base_') : readFilters(q);
    return { base_from: b.from, base_to: b.to, ...filterParams(f, 'base_'), ...(q.get('base_service') ? { base_service: q.get('base_service') as string } : {}) };
  }

  /** processes are what the process picker offers: the graph's top-level frames, or, with no graph on
   *  screen (the table-only view) or none drawn yet, the functions table's roots (the same frames). */
  function processes(): string[] {
    if (model && graphShown()) return Array.from(model.children(0), (i) => model!.name(i));
    return fnTable.roots;
  }

  /** graphShown reports whether the flame graph and its top table are on screen (not in the table-only view). */
  function graphShown(): boolean {
    return mode === 'diff' || readView(q) !== 'table';
  }

  function update(u: URL): void {
    q = u.searchParams;
    const key = currentKey();
    if (key !== dataKey) {
      dataKey = key;
      void load();
    }
    // Only what the view shows is fetched: the table-only view asks for neither the graph nor the top
    // table, and they load when the graph is shown again (if the selection changed meanwhile).
    if (graphShown()) {
      if (key !== graphKey) {
        graphKey = key;
        void loadGraph();
      }
      const tk = key + '|' + (q.get('sort') || 'self');
      if (tk !== topKey) {
        topKey = tk;
        void loadTop();
      }
    } else {
      graphCtrl?.abort();
      topCtrl?.abort();
      if (graphKey !== key) graphKey = '';
      if (!topKey.startsWith(key + '|')) topKey = '';
    }
    renderControls();
    applyView();
    renderFunctions();
    stackView.update(readStackView(q), processes(), hiddenNodes);
    cmpTable.update(mode === 'diff' && q.get('service') ? { ...commonParams, ...baseParams(), ...stackViewParams(readStackView(q)) } : null, q.get('csort'), q.get('corder'));
  }

  /** renderFunctions lays out graph, table or both, and updates the functions table and the history. */
  function renderFunctions(): void {
    const view = mode === 'diff' ? 'graph' : readView(q);
    memo(viewSlot, view + mode, () => replace(viewSlot, mode === 'diff' ? null : VIEWS.map(([k, label]) => h('button', {
      type: 'button', class: 'seg' + (view === k ? ' on' : ''), 'aria-pressed': String(view === k), dataset: { view: k },
      onclick: () => setParams({ view: k === 'graph' ? null : k }),
    }, label))));
    split.hidden = view === 'table';
    // The graph's own tools go with it.
    for (const e of [searchInput, matched, orientBtn, resetBtn, crumbs]) e.hidden = view === 'table';
    fnTable.el.hidden = view === 'graph';
    // The table and the history follow the runtime and process view, as the graph does.
    const params = q.get('service') ? { ...commonParams, ...stackViewParams(readStackView(q)) } : null;
    if (view !== 'graph') fnTable.update(params, { sort: q.get('tsort') || 'total', filter: q.get('tfilter') || '', selected: q.get('fn') || '' });
    fnHist.update(params, q.get('hist') || '');
  }

  function ignoreAbort(e: unknown): void {
    if ((e as Error).name === 'AbortError' || destroyed) return;
    if (e instanceof ApiError && e.status === 401) return;
    replace(errorSlot, errorBox(e));
    debug.error = (e as Error).message;
  }

  async function load(): Promise<void> {
    ctrl?.abort();
    const c = (ctrl = new AbortController());
    const signal = c.signal;
    const service = q.get('service') || '';
    replace(errorSlot);
    debug.ready = false;
    debug.error = '';
    range = readRange(q);
    const filters = readFilters(q);
    commonParams = { service, from: range.from, to: range.to, ...filterParams(filters) };
    renderExports();
    if (!service) {
      graphCtrl?.abort();
      model = null;
      graph.setModel(null);
      replace(status, 'Choose a service to see its profile.');
      timeline.set({ step: 0, points: [] }, range.from, range.to);
      hostMetrics.load(null, signal);
      debug.ready = true;
      return;
    }
    const shape = stackViewParams(readStackView(q));
    timeline.set(null, range.from, range.to);
    get<Timeline>('/timeline', { ...commonParams, ...shape }, signal).then((t) => timeline.set(t, range.from, range.to)).catch(ignoreAbort);
    // Host metrics of the same selection, in the profile view (a diff compares stacks only). The runtime
    // and process view goes along, so that the panel says it does not apply (the reply's ignored).
    hostMetrics.load(mode === 'profile' ? { ...commonParams, ...shape } : null, signal);
    filterOpts = null;
    get<FilterOptions>('/filters', { service, from: range.from, to: range.to }, signal).then((o) => { filterOpts = o; dataVer++; renderFilters(); }).catch(ignoreAbort);
    if (mode === 'diff' && q.get('bf') === 'own') {
      const b = readBaseRange(q, range);
      baseFilterOpts = null;
      get<FilterOptions>('/filters', { service, from: b.from, to: b.to }, signal).then((o) => { baseFilterOpts = o; dataVer++; renderBase(); }).catch(ignoreAbort);
    }
    // The table-only view is ready once its own parts are asked for: the graph is not (see update).
    if (!graphShown()) debug.ready = true;
  }

  /** loadGraph fetches and draws the flame graph (or the diff) of the selection. */
  async function loadGraph(): Promise<void> {
    graphCtrl?.abort();
    const c = (graphCtrl = new AbortController());
    const signal = c.signal;
    if (!q.get('service')) return;
    debug.ready = false;
    replace(status, 'loading…');
    try {
      const t0 = performance.now();
      const params = mode === 'diff'
        ? { ...commonParams, ...baseParams(), ...stackViewParams(readStackView(q)) }
        : { ...commonParams, maxNodes: q.get('maxNodes') || DEFAULT_MAX_NODES, focus: q.get('focus') || undefined, ...stackViewParams(readStackView(q)) };
      debug.covered = null;
      const text = await request<string>('GET', mode === 'diff' ? '/diff' : '/flamegraph', {
        params, signal, raw: true,
        onHeaders: (h) => {
          const c = coveredRange(h);
          debug.covered = c && (c[0] !== range.from || c[1] !== range.to) ? c : null;
        },
      });
      const tp = performance.now();
      const tree = JSON.parse(text) as TreeNode;
      hiddenNodes = pruneTree(tree, readStackView(q).minWeight);
      debug.parseMs = performance.now() - tp;
      if (signal.aborted || destroyed) return;
      debug.loadMs = performance.now() - t0;
      const t1 = performance.now();
      const m = flatten(tree, mode === 'diff');
      debug.flattenMs = performance.now() - t1;
      model = m;
      appliedSearch = null;
      graph.setModel(m);
      debug.nodes = m.n;
      applyView();
      graph.renderNow();
      debug.firstPaintMs = performance.now() - t1;
      renderStatus();
      stackView.update(readStackView(q), Array.from(m.children(0), (i) => m.name(i)), hiddenNodes);
      debug.ready = true;
      // After the first paint: intern names (search, legend) while the user looks.
      setTimeout(() => { if (model === m && !destroyed) renderLegend(); }, 0);
    } catch (e) {
      ignoreAbort(e);
      if (!signal.aborted) replace(status, '');
    }
  }

  async function loadTop(): Promise<void> {
    topCtrl?.abort();
    const c = (topCtrl = new AbortController());
    const service = q.get('service');
    top = null;
    dataVer++;
    renderTop();
    if (!service) return;
    const r = readRange(q);
    try {
      top = await get<Top>('/top', { service, from: r.from, to: r.to, ...filterParams(readFilters(q)), ...stackViewParams(readStackView(q)), sort: q.get('sort') || 'self', limit: TOP_LIMIT }, c.signal);
      dataVer++;
      if (!destroyed) renderTop();
    } catch (e) { ignoreAbort(e); }
  }

  function renderStatus(): void {
    const m = model;
    if (!m) return;
    if (!m.value[0]) { replace(status, 'No samples for this selection.'); return; }
    const parts = [`${fmtInt(m.value[0])} samples`, `${fmtCount(m.n)} nodes`];
    if (m.base) parts.push(`baseline ${fmtInt(m.baseTotal)} samples`);
    const c = debug.covered;
    if (c) {
      const unit = c[0] % 86400 === 0 && c[1] % 86400 === 0 ? 'days' : 'hours';
      parts.push(`past the raw retention: whole ${unit} ${fmtDateTime(c[0])} → ${fmtDateTime(c[1])}`);
    }
    parts.push(`loaded in ${Math.round(debug.loadMs)} ms, drawn in ${Math.round(debug.firstPaintMs)} ms`);
    replace(status, parts.join(' · '));
  }

  function renderLegend(): void {
    replace(legendSlot, legend(model, isDark()));
  }

  function renderTop(): void {
    replace(topSlot, topTable(top, q.get('sort') || 'self', q.get('fn') || '', isDark(),
      (s) => setParams({ sort: s === 'self' ? null : s }, { replace: true }),
      (name) => setParams({ fn: name || null, hist: name || q.get('hist') }, { replace: true })));
  }

  function renderService(): void {
    const cur = q.get('service') || '';
    if (serviceSlot.dataset.cur === cur && serviceSlot.firstChild) return;
    serviceSlot.dataset.cur = cur;
    replace(serviceSlot, servicePicker(cur, changeService));
  }

  function renderFilters(): void {
    replace(filterSlot, filterBar(filterOpts, readFilters(q), (f: Filters) => setParams({ ...filterURLChanges(f), zoom: null, focus: null })));
  }

  function renderBase(): void {
    if (mode !== 'diff') return;
    const b = readBaseRange(q, range);
    const own = q.get('bf') === 'own';
    const fromIn = h('input', { type: 'datetime-local', class: 'dt', value: toLocalInput(b.from), 'aria-label': 'baseline from' });
    const toIn = h('input', { type: 'datetime-local', class: 'dt', value: toLocalInput(b.to), 'aria-label': 'baseline to' });
    const custom = h('form', { class: 'custom-range', hidden: b.mode !== 'custom' }, fromIn, '→', toIn,
      h('button', { type: 'submit', class: 'btn small primary' }, 'Apply'));
    custom.addEventListener('submit', (e) => {
      e.preventDefault();
      const f = fromLocalInput(fromIn.value);
      const t = fromLocalInput(toIn.value);
      if (f != null && t != null && t > f) setParams({ base: null, base_from: String(f), base_to: String(t) });
    });
    replace(baseSlot,
      h('div', { class: 'toolbar' },
        h('span', { class: 'label' }, 'Baseline'),
        h('div', { class: 'segs' },
          BASE_MODES.map(([k, label]) => h('button', {
            type: 'button', class: 'seg' + (b.mode === k ? ' on' : ''), dataset: { base: k },
            onclick: () => setParams({ base: k === 'prev' ? null : k, base_from: null, base_to: null }),
          }, label)),
          h('button', { type: 'button', class: 'seg' + (b.mode === 'custom' ? ' on' : ''), onclick: () => { custom.hidden = !custom.hidden; } }, 'Custom')),
        custom,
        h('span', { class: 'muted' }, `${fmtDateTime(b.from)} → ${fmtDateTime(b.to)}`),
        h('span', { class: 'label' }, 'Baseline service'),
        h('span', { class: 'base-service' }, servicePicker(q.get('base_service') || '', (n) => setParams(n && n !== q.get('service') ? { base_service: n, base: 'same', base_from: null, base_to: null, bf: 'own' } : { base_service: null, base: null, bf: null }), 'Same service', true)),
        h('label', { class: 'check' },
          h('input', { type: 'checkbox', checked: !own, onchange: (e: Event) => setParams({ bf: (e.target as HTMLInputElement).checked ? null : 'own' }) }),
          ' same filters as comparison')),
      own ? filterBar(baseFilterOpts, readFilters(q, 'base_'), (f) => setParams(filterURLChanges(f, 'base_')), 'Baseline filters') : null);
  }

  function renderExports(): void {
    const service = q.get('service') || 'profile';
    const links = ['folded', 'speedscope', 'pprof'].map((f) =>
      h('a', { class: 'btn small', href: exportURL(f, { ...commonParams, ...stackViewParams(readStackView(q)) }), download: '', dataset: { export: f } }, f));
    replace(exportSlot, h('span', { class: 'label' }, 'Export'), mode === 'diff' ? null : links,
      h('button', {
        type: 'button', class: 'btn small', dataset: { export: 'png' },
        onclick: () => graph.toPNG((b) => { if (b) download(b, `${service}-flamegraph.png`); }),
      }, 'PNG'),
      h('button', {
        type: 'button', class: 'btn small', dataset: { export: 'svg' },
        onclick: () => download(new Blob([toSVG(graph, `${service} · ${fmtDateTime(range.from)} → ${fmtDateTime(range.to)}`)], { type: 'image/svg+xml' }), `${service}-flamegraph.svg`),
      }, 'SVG'));
  }

  // Each control re-renders only when its inputs change, so zoom or search
  // clicks (URL updates) do not rebuild the page.
  const rendered = new Map<HTMLElement, string>();
  let dataVer = 0;
  function memo(slot: HTMLElement, key: string, render: () => void): void {
    if (rendered.get(slot) === key) return;
    rendered.set(slot, key);
    render();
  }

  function renderControls(): void {
    range = readRange(q);
    renderService();
    const p = (k: string) => q.getAll(k).join(',');
    memo(rangeSlot, [p('range'), p('from'), p('to')].join('|'), () =>
      replace(rangeSlot, timeRangePicker(range, (c) => setParams({ ...c, zoom: null }))));
    memo(filterSlot, JSON.stringify(readFilters(q)) + dataVer, renderFilters);
    memo(baseSlot, [p('base_service'), p('base'), p('base_from'), p('base_to'), p('bf'), JSON.stringify(readFilters(q, 'base_')), dataVer, range.from].join('|'), renderBase);
    memo(topSlot, [p('sort'), p('fn'), dataVer, isDark()].join('|'), renderTop);
    const flame = q.get('orient') === 'flame';
    orientBtn.textContent = flame ? '⇅ Flame' : '⇅ Icicle';
    if (document.activeElement !== searchInput) searchInput.value = q.get('search') || '';
  }

  function applyView(): void {
    const flame = q.get('orient') === 'flame';
    graph.setFlipped(flame);
    debug.orientation = flame ? 'flame' : 'icicle';
    debug.focus = splitPath(q.get('focus'));
    const m = model;
    if (!m) { renderCrumbs(); return; }
    const index = resolveZoom(m, q.get('zoom'));
    if (graph.zoom !== index) graph.setZoom(index);
    debug.zoomPath = m.path(index);
    const s = q.get('search') || '';
    const fn = q.get('fn') || '';
    const key = s + '\u0000' + fn;
    if (key !== appliedSearch || appliedModel !== m) {
      appliedSearch = key;
      appliedModel = m;
      const sm = matcher(s);
      debug.search = s;
      if (!sm && !fn) {
        graph.setMask(null);
        debug.searchMatched = 0;
        matched.textContent = '';
      } else {
        const r = m.match((n) => (fn !== '' && n === fn) || (sm !== null && sm(n)));
        graph.setMask(r.mask);
        debug.searchMatched = r.fraction;
        matched.textContent = r.nodes ? `matched ${fmtPct(r.fraction)} of root` : 'no match';
        matched.title = `${r.nodes} nodes`;
      }
    }
    renderCrumbs();
  }

  function renderCrumbs(): void {
    const focus = splitPath(q.get('focus'));
    const m = model;
    const zoom = m ? m.path(graph.zoom) : [];
    const items: (HTMLElement | string)[] = [];
    const crumb = (label: string, onclick: () => void, current = false) =>
      h('button', { type: 'button', class: 'crumb' + (current ? ' current' : ''), title: label, onclick }, label);
    items.push(crumb('all', () => setParams({ focus: null, zoom: null }), !focus.length && !zoom.length));
    focus.forEach((f, k) => {
      items.push(h('span', { class: 'sep' }, '›'));
      items.push(crumb(f, () => setParams({ focus: focus.slice(0, k + 1).join(';'), zoom: null }), k === focus.length - 1 && !zoom.length));
    });
    if (focus.length) items.push(h('span', { class: 'badge' }, 'focus'));
    // zoom[k] is the node at depth k + 1 on the way to the zoomed node; a
    // long path shows its ends around a count of the frames left out.
    const anc = new Int32Array(zoom.length);
    if (m) for (let j = graph.zoom, k = zoom.length - 1; k >= 0; j = m.parent[j], k--) anc[k] = j;
    const tail = Math.max(CRUMBS_HEAD, zoom.length - CRUMBS_TAIL);
    for (let k = 0; k < zoom.length; k++) {
      if (k === CRUMBS_HEAD && tail > CRUMBS_HEAD) {
        items.push(h('span', { class: 'sep' }, '›'));
        items.push(h('span', { class: 'crumb-gap muted', title: 'frames between' }, `… ${fmtInt(tail - CRUMBS_HEAD)} frames …`));
        k = tail - 1;
        continue;
      }
      const i = anc[k];
      items.push(h('span', { class: 'sep' }, '›'));
      items.push(crumb(zoom[k], () => setParams({ zoom: m ? zoomParam(m, i) : null }), k === zoom.length - 1));
    }
    replace(crumbs, items);
  }

  update(url);

  return {
    el,
    update,
    destroy() {
      destroyed = true;
      ctrl?.abort();
      graphCtrl?.abort();
      topCtrl?.abort();
      fnTable.destroy();
      fnHist.destroy();
      cmpTable.destroy();
      graph.destroy();
      timeline.destroy();
      offTheme();
      document.removeEventListener('keydown', onKey);
      clearTimeout(searchTimer);
    },
  };
}

function helpDialog(): HTMLDialogElement {
  const rows: [string, string][] = [
    ['/', 'focus the search box'], ['Esc', 'reset zoom (in the search box: clear it)'], ['f', 'flip icicle / flame'],
    ['?', 'show this help'], ['click', 'zoom into a frame ("other": load the truncated frames)'], ['drag on timeline', 'zoom into a time range'],
  ];
  const d = h('dialog', { class: 'help' },
    h('h3', null, 'Keyboard shortcuts'),
    h('table', null, h('tbody', null, rows.map(([k, v]) => h('tr', null, h('td', null, h('kbd', null, k)), h('td', null, v))))),
    h('form', { method: 'dialog' }, h('button', { class: 'btn small' }, 'Close')));
  return d;
}
