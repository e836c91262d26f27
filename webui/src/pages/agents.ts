import { h, replace, errorBox, fmtAgo, parseTime } from '../dom';
import { get, Agent } from '../api';
import { Page, setParams } from '../router';
import { debug } from '../debug';
import { servicePicker, listServices } from '../components/servicepick';
import { agentLogsPanel } from '../components/agentlogs';

/**
 * logsForm opens the logs of any service and host by name: an agent that sends logs but no profiles (it
 * fails to profile, or was just installed) has no row in the agents list and its service may be in no
 * picker, yet its logs are what one wants to read. The names offered are the known services and the
 * listed agents' services and hosts; any other name may be typed (the server checks what the user may read).
 */
function logsForm(known: () => { services: string[]; hosts: string[] }): HTMLElement {
  const svcList = h('datalist', { id: 'al-services' });
  const hostList = h('datalist', { id: 'al-hosts' });
  const svc = h('input', { type: 'text', name: 'log_service', list: 'al-services', placeholder: 'service', 'aria-label': 'logs of service', required: true, maxlength: 200, class: 'al-open-service' });
  const host = h('input', { type: 'text', name: 'log_host', list: 'al-hosts', placeholder: 'every host', 'aria-label': 'logs of host', maxlength: 200, class: 'al-open-host' });
  const fill = () => {
    const k = known();
    replace(svcList, k.services.map((n) => h('option', { value: n })));
    replace(hostList, k.hosts.map((n) => h('option', { value: n })));
  };
  svc.addEventListener('focus', fill);
  host.addEventListener('focus', fill);
  const form = h('form', { class: 'al-open', dataset: { action: 'open-logs-form' }, style: { display: 'flex', gap: '6px', alignItems: 'center', flexWrap: 'wrap' } },
    h('span', { class: 'label' }, 'Logs of'), svc, host, svcList, hostList,
    h('button', { type: 'submit', class: 'btn small' }, 'Open logs'));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const s = svc.value.trim();
    if (s) setParams({ log_service: s, log_host: host.value.trim() || null, log_level: null, log_q: null });
  });
  return form;
}

/** agentsPage shows the agents that reported, optionally for one service. */
export function agentsPage(url: URL): Page {
  let ctrl = new AbortController();
  const pick = h('span', { class: 'toolbar' });
  const body = h('div');
  const logs = agentLogsPanel();
  let shown: string | null = null;
  let listed: Agent[] = [];
  let services: string[] = [];
  listServices().then((l) => { services = l.map((x) => x.name); }).catch(() => { /* the list shows API errors */ });
  const known = () => ({
    services: [...new Set([...services, ...listed.map((a) => a.service)])].sort(),
    hosts: [...new Set(listed.map((a) => a.hostname))].sort(),
  });
  const form = logsForm(known);
  function load(u: URL): void {
    logs.update(u);
    // The logs panel's own parameters change the URL too: the list reloads only for another service.
    if (shown === (u.searchParams.get('service') || '')) return;
    shown = u.searchParams.get('service') || '';
    ctrl.abort();
    ctrl = new AbortController();
    const service = u.searchParams.get('service') || '';
    replace(pick, servicePicker(service, (s) => setParams({ service: s || null }), 'all services', true),
      service ? h('button', { type: 'button', class: 'btn small', dataset: { action: 'service-logs' },
        onclick: () => setParams({ log_service: service, log_host: null }) }, 'Logs of every host') : null);
    replace(body, h('p', { class: 'muted' }, 'loading…'));
    get<{ agents: Agent[] }>('/agents', { service }, ctrl.signal).then((r) => {
      const agents = (r.agents || []).slice().sort((a, b) => parseTime(b.last_seen) - parseTime(a.last_seen));
      listed = agents;
      const now = Date.now() / 1000;
      replace(body, agents.length ? h('table', { class: 'grid' },
        h('thead', null, h('tr', null, ['Status', 'Service', 'Host', 'Agent version', 'Instance type', 'gpid', 'First seen', 'Last seen', ''].map((c) => h('th', null, c)))),
        h('tbody', null, agents.map((a) => {
          const age = now - parseTime(a.last_seen);
          const st = age < 300 ? ['ok', 'active'] : age < 3600 ? ['warn', 'stale'] : ['bad', 'gone'];
          return h('tr', null,
            h('td', null, h('span', { class: 'badge ' + st[0] }, st[1])),
            h('td', null, h('a', { href: `/profile?service=${encodeURIComponent(a.service)}&host=${encodeURIComponent(a.hostname)}` }, a.service)),
            h('td', null, a.hostname), h('td', null, a.agent_version), h('td', null, a.instance_type || '—'),
            h('td', { class: 'num' }, String(a.gpid ?? '')),
            h('td', { title: a.first_seen }, fmtAgo(a.first_seen)), h('td', { title: a.last_seen }, fmtAgo(a.last_seen)),
            h('td', null, h('button', { type: 'button', class: 'btn tiny', dataset: { action: 'logs', host: a.hostname },
              onclick: () => setParams({ log_service: a.service, log_host: a.hostname }) }, 'Logs')));
        })))
        : h('p', { class: 'muted' }, 'No agent has uploaded a profile yet (the logs of one that only sent logs open by "Logs of" above). ', h('a', { href: '/admin/install' }, 'Install one.')));
      debug.ready = true;
    }).catch((e) => { if (e.name !== 'AbortError') replace(body, errorBox(e)); });
  }
  load(url);
  return {
    el: h('div', { class: 'page admin' }, h('div', { class: 'toolbar' }, h('h2', null, 'Agents'), pick), h('div', { class: 'toolbar' }, form), logs.el, body),
    update: load,
    destroy() { ctrl.abort(); logs.destroy(); },
  };
}
