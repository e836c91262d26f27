// Client of the JSON API described in query/API.md.

import { redirectToLogin } from './router';

/** ApiError is a non-2xx reply of the API. */
export class ApiError extends Error {
  status: number;
  detail: string;
  constructor(status: number, message: string, detail = '') {
    super(message);
    this.status = status;
    this.detail = detail;
  }
}

export type Params = URLSearchParams | Record<string, string | number | undefined | null | (string | number)[]>;

export interface TreeNode {
  name: string;
  value: number;
  self?: number;
  children?: TreeNode[];
  other?: boolean;
  base?: number;
  total?: number;
  base_total?: number;
}
export interface Service { name: string; last_seen: string; samples: number; hosts: number; trend: number[]; cpu_avg?: number; mem_avg?: number }
export interface Timeline { step: number; points: [number, number][] }
export interface TopFunction { name: string; self: number; total: number }
export interface Top { total: number; functions: TopFunction[] }
export interface FilterValue { value: string; samples: number }
export type FilterOptions = Record<string, FilterValue[]>;
export interface Agent { service: string; hostname: string; agent_version: string; instance_type: string; gpid: number | string; first_seen: string; last_seen: string }
export interface Token { id: number | string; name: string; service: string; created_at: string; revoked: boolean }
export interface Settings { sample_threshold: number; retention_days?: number | null }

/** API_BASE is where every route lives. */
export const API_BASE = '/api/v1';

/** query builds a query string from params (arrays repeat the key, empty values are dropped). */
export function query(params?: Params): string {
  if (!params) return '';
  const q = params instanceof URLSearchParams ? params : new URLSearchParams();
  if (!(params instanceof URLSearchParams)) {
    for (const k in params) {
      const v = params[k];
      if (v == null || v === '') continue;
      if (Array.isArray(v)) v.forEach((x) => q.append(k, String(x)));
      else q.append(k, String(v));
    }
  }
  const s = q.toString();
  return s ? '?' + s : '';
}

/** cookie reads a cookie readable by scripts (fs_csrf). */
export function cookie(name: string): string {
  for (const part of document.cookie.split(';')) {
    const [k, ...v] = part.trim().split('=');
    if (k === name) return decodeURIComponent(v.join('='));
  }
  return '';
}

export interface RequestOptions { params?: Params; body?: unknown; signal?: AbortSignal; raw?: boolean; onHeaders?: (h: Headers) => void }

/** request calls the API; a 401 sends the browser to the login page (and back afterwards). */
export async function request<T>(method: string, path: string, opts: RequestOptions = {}): Promise<T> {
  const headers: Record<string, string> = { Accept: 'application/json' };
  if (opts.body !== undefined) headers['Content-Type'] = 'application/json';
  if (method !== 'GET' && method !== 'HEAD') headers['X-CSRF-Token'] = cookie('fs_csrf');
  let resp: Response;
  try {
    resp = await fetch(API_BASE + path + query(opts.params), {
      method,
      headers,
      credentials: 'same-origin',
      body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
      signal: opts.signal,
    });
  } catch (e) {
    if ((e as Error).name === 'AbortError') throw e;
    throw new ApiError(0, 'Network error', String(e));
  }
  if (resp.status === 401 && path !== '/login') {
    redirectToLogin();
    throw new ApiError(401, 'Not signed in');
  }
  if (!resp.ok) {
    let message = `${resp.status} ${resp.statusText}`;
    let detail = '';
    try {
      const j = await resp.json();
      if (j && j.message) message = j.message;
      if (j && j.detail) detail = String(j.detail);
    } catch { /* not JSON */ }
    throw new ApiError(resp.status, message, detail);
  }
  opts.onHeaders?.(resp.headers);
  if (resp.status === 204) return undefined as T;
  if (opts.raw) return (await resp.text()) as unknown as T;
  return (await resp.json()) as T;
}

/** get is request('GET', …). */
export function get<T>(path: string, params?: Params, signal?: AbortSignal): Promise<T> {
  return request<T>('GET', path, { params, signal });
}

/** exportURL is the download link of a profile export. */
export function exportURL(format: string, params: Params): string {
  const q = params instanceof URLSearchParams ? new URLSearchParams(params) : new URLSearchParams(query(params).slice(1));
  q.set('format', format);
  return API_BASE + '/export?' + q.toString();
}

/** coveredRange reads the range (unix seconds) a reply says it covers, which the API widens to whole hours
 * or days past the raw retention (headers Flamestream-From and -To), or null without the headers. */
export function coveredRange(h: Headers): [number, number] | null {
  const f = Date.parse(h.get('Flamestream-From') || '');
  const t = Date.parse(h.get('Flamestream-To') || '');
  return isFinite(f) && isFinite(t) ? [f / 1000, t / 1000] : null;
}
