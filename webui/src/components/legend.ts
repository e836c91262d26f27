// Legend of the runtimes present in a graph (or the diff colour scale).

import { h } from '../dom';
import { FlameModel } from '../flame/model';
import { RUNTIMES, suffixOf, runtimeOf, legendColor, diffPalette } from '../flame/colors';

/** legend lists the runtimes found in the model's frame names. */
export function legend(m: FlameModel | null, dark: boolean): HTMLElement {
  if (m && m.base) {
    const pal = diffPalette(dark);
    return h('div', { class: 'legend diff-legend' },
      h('span', null, 'shrank'),
      h('span', { class: 'scale', style: { background: `linear-gradient(to right, ${pal[0]}, ${pal[Math.floor(pal.length / 2)]}, ${pal[pal.length - 1]})` } }),
      h('span', null, 'grew'),
      h('span', { class: 'muted' }, ' (change of share of total)'));
  }
  const seen = new Set<string>();
  if (m) {
    m.intern();
    for (let k = 1; k < m.names.length; k++) seen.add(suffixOf(m.names[k]));
  }
  const known = RUNTIMES.filter((r) => seen.has(r.key));
  const unknown = [...seen].filter((k) => !RUNTIMES.some((r) => r.key === k)).sort().map(runtimeOf);
  const items = [...known, ...unknown].map((r) => h('span', { class: 'legend-item', title: r.key ? `frames ending in _[${r.key}]` : 'frames without a suffix' },
    h('span', { class: 'swatch', style: { background: legendColor(r, dark) } }), r.label));
  return h('div', { class: 'legend' }, items);
}
