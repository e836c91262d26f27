import { h, replace, errorBox } from '../dom';
import { get, request, Settings } from '../api';
import { Page, setParams } from '../router';
import { debug } from '../debug';
import { servicePicker } from '../components/servicepick';

/** settingsPage edits a service's sample threshold and retention. */
export function settingsPage(url: URL): Page {
  let ctrl = new AbortController();
  const pick = h('span');
  const body = h('div');
  function load(u: URL): void {
    ctrl.abort();
    ctrl = new AbortController();
    const service = u.searchParams.get('service') || '';
    replace(pick, servicePicker(service, (s) => setParams({ service: s || null })));
    if (!service) { replace(body, h('p', { class: 'muted' }, 'Choose a service.')); debug.ready = true; return; }
    replace(body, h('p', { class: 'muted' }, 'loading…'));
    get<Settings>(`/settings/${encodeURIComponent(service)}`, undefined, ctrl.signal).then((s) => {
      const thr = h('input', { type: 'number', min: 0, max: 1, step: 0.01, required: true, value: String(s.sample_threshold ?? 0), name: 'sample_threshold' });
      // Empty is the global retention: a number here deletes this service's older rows from every table.
      const ret = h('input', { type: 'number', min: 1, step: 1, placeholder: 'global', value: s.retention_days == null ? '' : String(s.retention_days), name: 'retention_days' });
      const msg = h('div', { role: 'status' });
      const form = h('form', { class: 'card form-grid' },
        h('label', null, 'Sample threshold (0–1)', thr,
          h('span', { class: 'muted' }, 'Fraction of uploads dropped before indexing (downsampling); 0 keeps everything.')),
        h('label', null, 'Retention (days)', ret, h('span', { class: 'muted' },
          'Empty: the global retention. At most the raw retention; this service\'s older data, rollups included, is deleted.')),
        h('div', null, h('button', { type: 'submit', class: 'btn primary' }, 'Save')), msg);
      form.addEventListener('submit', async (e) => {
        e.preventDefault();
        replace(msg);
        try {
          const saved = await request<Settings>('PUT', `/settings/${encodeURIComponent(service)}`, {
            body: { sample_threshold: Number(thr.value), retention_days: ret.value === '' ? null : Math.round(Number(ret.value)) },
          });
          if (saved) { thr.value = String(saved.sample_threshold); ret.value = saved.retention_days == null ? '' : String(saved.retention_days); }
          replace(msg, h('span', { class: 'ok-text' }, 'Saved.'));
        } catch (ex) { replace(msg, errorBox(ex)); }
      });
      replace(body, form);
      debug.ready = true;
    }).catch((e) => { if (e.name !== 'AbortError') replace(body, errorBox(e)); });
  }
  load(url);
  return {
    el: h('div', { class: 'page admin' }, h('div', { class: 'toolbar' }, h('h2', null, 'Service settings'), pick), body),
    update: load,
    destroy() { ctrl.abort(); },
  };
}
