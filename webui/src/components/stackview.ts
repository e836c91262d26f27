// Runtime and process views: turn runtimes off (their frames are dropped and the stacks merged, on the
// server: see query/stackshape.go), keep or exclude processes (the first frame of a stack, on the server:
// totals change), and hide nodes under a weight threshold (in the browser: purely visual, totals and
// selfs unchanged). All of it lives in the URL: runtimes_off=kernel,java&process=A&process_not=B&minw=0.5.

import { h, replace } from '../dom';
import type { TreeNode } from '../api';
import { legendColor, runtimeOf } from '../flame/colors';

/** STACK_RUNTIMES are the runtimes a view can turn off: the API's name, a label and a frame suffix (for the swatch). */
export const STACK_RUNTIMES: [string, string, string][] = [
  ['kernel', 'Kernel', 'k'], ['native', 'Native', ''], ['python', 'Python', 'p'], ['python_ext', 'Python ext./native', 'pn'],
  ['java', 'Java', 'j'], ['ruby', 'Ruby', 'rb'], ['php', 'PHP', 'php'], ['dotnet', '.NET', 'net'],
];

/** MIN_WEIGHTS are the thresholds offered (percent of the root); 0 shows every node. */
export const MIN_WEIGHTS = [0, 0.1, 0.5, 1, 5];

/** StackView is what the URL says about the runtime and process view. */
export interface StackView { runtimesOff: string[]; process: string[]; processNot: string[]; minWeight: number }

/** readStackView reads the view from the URL. */
export function readStackView(q: URLSearchParams): StackView {
  const rt = q.getAll('runtimes_off').flatMap((v) => v.split(',')).map((s) => s.trim()).filter(Boolean);
  const w = Number(q.get('minw') || 0);
  return {
    runtimesOff: [...new Set(rt)].sort(),
    process: q.getAll('process').filter(Boolean),
    processNot: q.getAll('process_not').filter(Boolean),
    minWeight: isFinite(w) && w > 0 && w < 100 ? w : 0,
  };
}

/** stackViewParams are the API parameters of a view (flamegraph, top, diff): those that change the stacks. */
export function stackViewParams(v: StackView): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  if (v.runtimesOff.length) out.runtimes_off = v.runtimesOff.join(',');
  if (v.process.length) out.process = v.process;
  if (v.processNot.length) out.process_not = v.processNot;
  return out;
}

/** stackViewKey identifies what the server applies (a change reloads the graph); the threshold is separate. */
export function stackViewKey(v: StackView): string {
  return JSON.stringify([v.runtimesOff, v.process, v.processNot]);
}

/**
 * pruneTree hides, in place, the nodes whose weight is under minPct percent of the root's, in either side
 * of a diff: their width stays in their parent (which then shows more self), the root keeps its total. It
 * returns how many nodes it hid.
 */
export function pruneTree(root: TreeNode, minPct: number): number {
  if (!(minPct > 0)) return 0;
  const lim = (root.value || 0) * minPct / 100;
  const baseLim = (root.base || 0) * minPct / 100;
  let hidden = 0;
  const count = (n: TreeNode): number => 1 + (n.children || []).reduce((s, c) => s + count(c), 0);
  const walk = (n: TreeNode) => {
    if (!n.children) return;
    const keep: TreeNode[] = [];
    for (const c of n.children) {
      const under = c.value < lim && (!root.base || (c.base || 0) < baseLim);
      if (under) hidden += count(c);
      else { keep.push(c); walk(c); }
    }
    n.children = keep;
  };
  walk(root);
  return hidden;
}

/** StackViewBar draws the runtime toggles, the process choices and the threshold. */
export class StackViewBar {
  readonly el = h('div', { class: 'toolbar stack-view', 'aria-label': 'runtime and process view' });
  private key = '';

  /** onChange receives URL changes (setParams). */
  constructor(private onChange: (c: Record<string, string | string[] | null>) => void) {}

  /** update redraws when the view or the processes offered changed (processes: the graph's top-level frames, or the functions table's roots in the table-only view). */
  update(v: StackView, processes: string[], hidden: number): void {
    const offered = [...new Set([...processes, ...v.process, ...v.processNot])].sort();
    const key = JSON.stringify([v, offered, hidden]);
    if (key === this.key) return;
    this.key = key;
    const off = new Set(v.runtimesOff);
    const setRuntimes = (next: Set<string>) => this.onChange({ runtimes_off: next.size ? [...next].sort().join(',') : null, zoom: null, focus: null });
    const toggles = STACK_RUNTIMES.map(([name, label, sfx]) => h('label', { class: 'check rt-toggle', title: `${label} frames: off drops them and gives their samples to their callers` },
      h('input', {
        type: 'checkbox', checked: !off.has(name), dataset: { runtime: name },
        onchange: (e: Event) => {
          const next = new Set(off);
          if ((e.target as HTMLInputElement).checked) next.delete(name); else next.add(name);
          setRuntimes(next);
        },
      }),
      h('span', { class: 'swatch', style: { background: legendColor(runtimeOf(sfx), false) } }), ' ', label));
    // Suffixes turned off by hand in the URL (runtimes_off=s) show as chips to turn back on.
    const extra = v.runtimesOff.filter((r) => !STACK_RUNTIMES.some(([n]) => n === r)).map((r) =>
      h('button', { type: 'button', class: 'chip', title: 'turn back on', onclick: () => { const n = new Set(off); n.delete(r); setRuntimes(n); } }, `_[${r}] off ×`));
    const pick = h('select', { 'aria-label': 'process', class: 'proc-pick' },
      h('option', { value: '' }, 'Process…'), offered.map((p) => h('option', { value: p }, p)));
    const setProc = (only: string[], not: string[]) => this.onChange({ process: only.length ? only : null, process_not: not.length ? not : null, zoom: null, focus: null });
    const chips = [
      ...v.process.map((p) => h('button', { type: 'button', class: 'chip on', dataset: { process: p }, title: 'only this process: click to remove',
        onclick: () => setProc(v.process.filter((x) => x !== p), v.processNot) }, `only ${p} ×`)),
      ...v.processNot.map((p) => h('button', { type: 'button', class: 'chip not', dataset: { processNot: p }, title: 'excluded: click to remove',
        onclick: () => setProc(v.process, v.processNot.filter((x) => x !== p)) }, `not ${p} ×`)),
    ];
    const weight = h('select', {
      'aria-label': 'hide nodes under', class: 'minw',
      onchange: (e: Event) => { const w = Number((e.target as HTMLSelectElement).value); this.onChange({ minw: w > 0 ? String(w) : null }); },
    }, MIN_WEIGHTS.map((w) => h('option', { value: String(w), selected: w === v.minWeight }, w ? `< ${w} %` : 'none')));
    replace(this.el,
      h('span', { class: 'label' }, 'Runtimes'), toggles, extra,
      h('span', { class: 'label' }, 'Processes'), pick,
      h('button', { type: 'button', class: 'btn small', dataset: { act: 'only' }, onclick: () => { if (pick.value && !v.process.includes(pick.value)) setProc([...v.process, pick.value], v.processNot.filter((x) => x !== pick.value)); } }, 'Only'),
      h('button', { type: 'button', class: 'btn small', dataset: { act: 'exclude' }, onclick: () => { if (pick.value && !v.processNot.includes(pick.value)) setProc(v.process.filter((x) => x !== pick.value), [...v.processNot, pick.value]); } }, 'Exclude'),
      chips,
      h('span', { class: 'label' }, 'Hide nodes'), weight,
      hidden ? h('span', { class: 'muted hidden-count' }, `${hidden} hidden`) : null,
      // Every stack read follows the view (graph, tables, history, timeline, exports); host metrics cannot:
      // an agent measures its host's CPU and memory for all processes together (GET /metrics names them ignored).
      v.runtimesOff.length || v.process.length || v.processNot.length
        ? h('span', { class: 'muted sv-scope', title: "an agent measures its host's CPU and memory for all processes and runtimes together" }, 'host metrics: every process') : null);
  }
}
