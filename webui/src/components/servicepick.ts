// Service selector shared by the profile and admin pages.

import { h, replace } from '../dom';
import { get, Service } from '../api';

let cache: { at: number; p: Promise<Service[]> } | null = null;

/** listServices fetches GET /services, shared by pickers for a few seconds. */
export function listServices(): Promise<Service[]> {
  if (!cache || Date.now() - cache.at > 15000) {
    const p = get<{ services: Service[] }>('/services').then((r) => r.services || []);
    p.catch(() => { cache = null; });
    cache = { at: Date.now(), p };
  }
  return cache.p;
}

/** servicePicker renders a <select> of services; empty means none/all (labelled by emptyLabel). */
export function servicePicker(cur: string, onChange: (name: string) => void, emptyLabel = 'Choose a service…', allowEmpty = false): HTMLElement {
  const wrap = h('span', { class: 'service-pick' });
  const render = (names: string[]) => {
    if (cur && !names.includes(cur)) names = [cur, ...names];
    replace(wrap, h('select', { 'aria-label': 'service', onchange: (e: Event) => onChange((e.target as HTMLSelectElement).value) },
      (allowEmpty || !cur) ? h('option', { value: '', selected: !cur }, emptyLabel) : null,
      names.map((n) => h('option', { value: n, selected: n === cur }, n))));
  };
  render([]);
  listServices().then((s) => render(s.map((x) => x.name))).catch(() => { /* the page shows API errors */ });
  return wrap;
}
