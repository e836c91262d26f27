// URL state shared by the profile and diff views. Everything a view shows is
// derived from the query string, so a copied link reproduces it.

import { parseTime } from './dom';

/** FILTER_KEYS are the filter dimensions of the API (each also has a *_not exclusion). */
export const FILTER_KEYS = ['host', 'container', 'instance_type', 'k8s_object'] as const;
export type FilterKey = typeof FILTER_KEYS[number];
export const FILTER_LABELS: Record<FilterKey, string> = {
  host: 'Host', container: 'Container', instance_type: 'Instance type', k8s_object: 'K8s object',
};

/** Filters maps "host", "host_not", … to the selected values. */
export type Filters = Record<string, string[]>;

/** PRESETS are the quick time ranges (label, seconds). */
export const PRESETS: [string, number][] = [
  ['15m', 900], ['1h', 3600], ['6h', 6 * 3600], ['24h', 86400], ['7d', 7 * 86400], ['30d', 30 * 86400],
];

/** Range is a resolved time range in unix seconds. */
export interface Range { preset: string | null; from: number; to: number }

/** readRange resolves range/from/to from the URL (default: the last hour). */
export function readRange(q: URLSearchParams): Range {
  const f = q.get('from');
  const t = q.get('to');
  if (f && t) {
    const from = parseTime(f);
    const to = parseTime(t);
    if (isFinite(from) && isFinite(to) && to > from) return { preset: null, from: Math.floor(from), to: Math.ceil(to) };
  }
  const p = q.get('range') || '1h';
  const sec = (PRESETS.find(([k]) => k === p) || PRESETS[1])[1];
  const now = Math.floor(Date.now() / 1000);
  return { preset: p, from: now - sec, to: now };
}

/** BASE_MODES are the baseline choices of the diff view (relative to the comparison range). */
export const BASE_MODES: [string, string][] = [['prev', 'Previous period'], ['1d', '1 day earlier'], ['7d', '1 week earlier'], ['same', 'Same range']];

/** readBaseRange resolves the diff baseline from base/base_from/base_to. */
export function readBaseRange(q: URLSearchParams, cmp: Range): Range & { mode: string } {
  const f = q.get('base_from');
  const t = q.get('base_to');
  if (f && t) {
    const from = parseTime(f);
    const to = parseTime(t);
    if (isFinite(from) && isFinite(to) && to > from) return { mode: 'custom', preset: null, from, to };
  }
  const mode = q.get('base') || 'prev';
  const len = cmp.to - cmp.from;
  // "same": the comparison's own range, for a baseline of another service (base_service).
  const shift = mode === '1d' ? 86400 : mode === '7d' ? 7 * 86400 : mode === 'same' ? 0 : len;
  return { mode: BASE_MODES.some(([k]) => k === mode) ? mode : 'prev', preset: null, from: cmp.from - shift, to: cmp.to - shift };
}

/** readFilters reads the include and exclude filters (keys optionally prefixed, e.g. "base_"). */
export function readFilters(q: URLSearchParams, prefix = ''): Filters {
  const out: Filters = {};
  for (const k of FILTER_KEYS) {
    for (const key of [k, k + '_not']) {
      const v = q.getAll(prefix + key).filter(Boolean);
      if (v.length) out[key] = v;
    }
  }
  return out;
}

/** filterParams converts filters to API parameters with a key prefix. */
export function filterParams(f: Filters, prefix = ''): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const k in f) if (f[k].length) out[prefix + k] = f[k];
  return out;
}

/** filterURLChanges returns setParams changes replacing all filters under a prefix. */
export function filterURLChanges(f: Filters, prefix = ''): Record<string, string[] | null> {
  const out: Record<string, string[] | null> = {};
  for (const k of FILTER_KEYS) {
    out[prefix + k] = f[k] && f[k].length ? f[k] : null;
    out[prefix + k + '_not'] = f[k + '_not'] && f[k + '_not'].length ? f[k + '_not'] : null;
  }
  return out;
}

/** splitPath parses a frame path "a;b;c" ([] when empty). */
export function splitPath(s: string | null): string[] {
  return s ? s.split(';').filter((x) => x !== '') : [];
}

/** DEFAULT_MAX_NODES is the node budget asked of the API unless the URL says otherwise. */
export const DEFAULT_MAX_NODES = 20000;

/** VIEWS are the profile page's layouts: the flame graph (with the top functions beside it), the functions table, or both. */
export const VIEWS: [string, string][] = [['graph', 'Graph'], ['table', 'Table'], ['both', 'Both']];

/** readView reads the layout from the URL (view=graph|table|both; graph when absent or unknown). */
export function readView(q: URLSearchParams): string {
  const v = q.get('view') || 'graph';
  return VIEWS.some(([k]) => k === v) ? v : 'graph';
}
