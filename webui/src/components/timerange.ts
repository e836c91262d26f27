// Time-range picker: presets plus a custom from/to.

import { h, toLocalInput, fromLocalInput, fmtDateTime } from '../dom';
import { PRESETS, Range } from '../state';

/** timeRangePicker renders the presets and custom inputs; onChange receives URL changes. */
export function timeRangePicker(r: Range, onChange: (c: Record<string, string | null>) => void): HTMLElement {
  const fromIn = h('input', { type: 'datetime-local', value: toLocalInput(r.from), 'aria-label': 'from', class: 'dt' });
  const toIn = h('input', { type: 'datetime-local', value: toLocalInput(r.to), 'aria-label': 'to', class: 'dt' });
  const custom = h('form', { class: 'custom-range', hidden: r.preset !== null },
    fromIn, h('span', null, '→'), toIn,
    h('button', { type: 'submit', class: 'btn small primary' }, 'Apply'));
  custom.addEventListener('submit', (e) => {
    e.preventDefault();
    const f = fromLocalInput(fromIn.value);
    const t = fromLocalInput(toIn.value);
    if (f == null || t == null || t <= f) {
      toIn.setCustomValidity('"to" must be after "from"');
      toIn.reportValidity();
      return;
    }
    toIn.setCustomValidity('');
    onChange({ range: null, from: String(f), to: String(t) });
  });
  const presets = PRESETS.map(([k]) => h('button', {
    type: 'button', class: 'seg' + (r.preset === k ? ' on' : ''), 'aria-pressed': String(r.preset === k), dataset: { preset: k },
    onclick: () => onChange({ range: k, from: null, to: null }),
  }, k));
  const customBtn = h('button', {
    type: 'button', class: 'seg' + (r.preset === null ? ' on' : ''), title: 'Custom range',
    onclick: () => { custom.hidden = !custom.hidden; },
  }, r.preset === null ? `${fmtDateTime(r.from)} → ${fmtDateTime(r.to)}` : 'Custom');
  return h('div', { class: 'range-picker' }, h('div', { class: 'segs', role: 'group', 'aria-label': 'time range' }, presets, customBtn), custom);
}
