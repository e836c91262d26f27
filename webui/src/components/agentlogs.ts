// An agent's recent logs (the records its --api-server option sends), opened from the Agents page, read
// from GET /api/v1/agents/logs. The URL holds the state: log_service and log_host (which agent),
// log_level (the minimum level) and log_q (a text the message or the logger contains); the server does
// the filtering and returns a bounded page, "Older" asks for the page before the last record shown.

import './agentlogs.css';
import { h, replace, errorBox, fmtDateTime, parseTime } from '../dom';
import { get } from '../api';
import { setParams } from '../router';

/** AgentLog is one record as the API returns it. */
export interface AgentLog { id: number; hostname: string; time: string; severity: number; logger: string; message: string; run_id?: string; agent_version?: string }

/** LOG_LEVELS are gLogger's severities (the Python level divided by ten), by name. */
export const LOG_LEVELS: [string, number][] = [['debug', 1], ['info', 2], ['warning', 3], ['error', 4], ['critical', 5]];

const PAGE = 200;

/** levelName names a severity ("sev 7" past the known ones). */
export function levelName(sev: number): string {
  const l = LOG_LEVELS.find(([, n]) => n === sev);
  return l ? l[0] : 'sev ' + sev;
}

/** logParams are the URL keys of the panel (cleared when it closes). */
export const LOG_PARAMS = ['log_service', 'log_host', 'log_level', 'log_q'];

/** agentLogsPanel returns the panel; update(url) shows what the URL asks for (hidden without log_service). */
export function agentLogsPanel(): { el: HTMLElement; update(u: URL): void; destroy(): void } {
  let ctrl = new AbortController();
  let key = '';
  const title = h('h3');
  const level = h('select', {
    'aria-label': 'minimum level', class: 'al-level-pick',
    onchange: () => setParams({ log_level: level.value || null }, { replace: true }),
  }, h('option', { value: '' }, 'all levels'), LOG_LEVELS.map(([k]) => h('option', { value: k }, k + ' and above')));
  const search = h('input', { type: 'search', class: 'search al-search', placeholder: 'search messages and loggers', 'aria-label': 'search logs', maxlength: 200 });
  let typing = 0;
  search.addEventListener('input', () => {
    clearTimeout(typing);
    typing = window.setTimeout(() => setParams({ log_q: search.value || null }, { replace: true }), 300);
  });
  const close = h('button', { type: 'button', class: 'btn small ghost', 'aria-label': 'close logs', dataset: { action: 'close-logs' },
    onclick: () => setParams(Object.fromEntries(LOG_PARAMS.map((k) => [k, null]))) }, '✕');
  const status = h('span', { class: 'muted al-status' });
  const rows = h('tbody');
  const older = h('button', { type: 'button', class: 'btn small', hidden: true, dataset: { action: 'older-logs' } }, 'Older');
  const el = h('section', { class: 'card agent-logs', hidden: true },
    h('div', { class: 'toolbar' }, title, level, search, status, h('span', { class: 'spacer' }), close),
    h('table', { class: 'grid al-table' },
      h('thead', null, h('tr', null, ['Time', 'Level', 'Host', 'Logger', 'Message'].map((c) => h('th', null, c)))), rows),
    h('div', null, older));

  let host = ''; // the host shown, '' for every host

  function row(l: AgentLog): HTMLElement {
    const cls = l.severity >= 4 ? 'bad' : l.severity === 3 ? 'warn' : '';
    return h('tr', { dataset: { id: String(l.id), severity: String(l.severity) } },
      h('td', { class: 'al-time', title: l.time }, fmtDateTime(parseTime(l.time), true)),
      h('td', null, h('span', { class: 'badge al-level ' + cls }, levelName(l.severity))),
      // A host opens its own logs: every host that logged is reachable, listed agent or not.
      h('td', null, host ? l.hostname : h('a', {
        href: '#', class: 'al-host', title: 'only this host', dataset: { host: l.hostname },
        onclick: (e: Event) => { e.preventDefault(); setParams({ log_host: l.hostname }); },
      }, l.hostname)), h('td', { class: 'muted' }, l.logger || '—'),
      h('td', { class: 'al-msg' }, l.message));
  }

  async function fetchPage(q: URLSearchParams, before: number): Promise<void> {
    ctrl.abort();
    ctrl = new AbortController();
    el.dataset.ready = 'false';
    status.textContent = 'loading…';
    try {
      const r = await get<{ logs: AgentLog[]; more: boolean }>('/agents/logs', {
        service: q.get('log_service'), hostname: q.get('log_host'), level: q.get('log_level'), q: q.get('log_q'),
        before: before || null, limit: PAGE,
      }, ctrl.signal);
      const logs = r.logs || [];
      if (!before) replace(rows);
      logs.forEach((l) => rows.appendChild(row(l)));
      const shown = rows.children.length;
      if (!shown) rows.appendChild(h('tr', null, h('td', { colspan: 5, class: 'muted' }, 'No log records match.')));
      status.textContent = shown ? `${shown} record${shown > 1 ? 's' : ''}${r.more ? ', newest first' : ''}` : '';
      older.hidden = !r.more;
      older.onclick = () => { void fetchPage(q, logs[logs.length - 1].id); };
      el.dataset.ready = 'true';
    } catch (e) {
      if ((e as Error).name === 'AbortError') return;
      status.textContent = '';
      replace(rows, h('tr', null, h('td', { colspan: 5 }, errorBox(e))));
      el.dataset.ready = 'true';
    }
  }

  function update(u: URL): void {
    const q = u.searchParams;
    const svc = q.get('log_service') || '';
    el.hidden = !svc;
    if (!svc) { ctrl.abort(); key = ''; return; }
    const k = LOG_PARAMS.map((p) => q.get(p) || '').join('\u0000');
    if (k === key) return;
    key = k;
    host = q.get('log_host') || '';
    replace(title, 'Logs of ', h('b', null, host || 'every host'), ' · ', svc);
    level.value = q.get('log_level') || '';
    if (document.activeElement !== search) search.value = q.get('log_q') || '';
    void fetchPage(q, 0);
  }

  return { el, update, destroy() { ctrl.abort(); clearTimeout(typing); } };
}
