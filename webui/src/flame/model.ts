// FlameModel: the call tree flattened once into typed arrays, nodes in DFS
// pre-order (a parent's index is always below its children's), plus one
// index array per depth sorted by start so rendering and hit-testing are a
// binary search per row.

import type { TreeNode } from '../api';

export class FlameModel {
  /** n is the number of nodes; node 0 is the root. */
  n = 0;
  /** nameOf[i] is the frame name of node i. */
  nameOf: string[];
  /**
   * names holds each distinct frame name once and nameId[i] indexes it; both
   * are filled by intern() on first need (search, legend), not by flatten,
   * because hashing every name would delay the first paint.
   */
  names: string[] = [];
  nameId: Int32Array = new Int32Array(0);
  parent: Int32Array;
  /** depth[i] is node i's depth (the root is 0); 32 bits, since real recursions pass 65,535 frames. */
  depth: Int32Array;
  /** start and value are in samples; a node spans [start, start+value). */
  start: Float64Array;
  value: Float64Array;
  self: Float64Array;
  /** base is the baseline value of a diff tree (null otherwise). */
  base: Float64Array | null;
  /** other marks the synthetic "other" nodes (merged truncated siblings). */
  other: Uint8Array;
  /** maxSub[i] is the deepest depth found under node i. */
  maxSub: Int32Array;
  /**
   * rowBuf holds the nodes row by row, each row in increasing start; row d
   * is rowBuf[rowStart[d] .. rowStart[d + 1]) (see row). Rows are views made
   * on demand: a 100,000-frame stack has as many rows, and a render reads
   * only those in view.
   */
  rowBuf: Int32Array = new Int32Array(0);
  rowStart: Int32Array = new Int32Array(1);
  maxDepth = 0;
  /** total and baseTotal are the root totals (baseTotal only for diffs). */
  total = 0;
  baseTotal = 0;

  constructor(n: number, diff: boolean) {
    this.n = n;
    this.nameOf = new Array(n);
    this.parent = new Int32Array(n);
    this.depth = new Int32Array(n);
    this.start = new Float64Array(n);
    this.value = new Float64Array(n);
    this.self = new Float64Array(n);
    this.base = diff ? new Float64Array(n) : null;
    this.other = new Uint8Array(n);
    this.maxSub = new Int32Array(n);
  }

  /** row returns the nodes at depth d in increasing start (empty past maxDepth). */
  row(d: number): Int32Array {
    if (d < 0 || d > this.maxDepth) return this.rowBuf.subarray(0, 0);
    return this.rowBuf.subarray(this.rowStart[d], this.rowStart[d + 1]);
  }

  /** name returns the frame name of node i. */
  name(i: number): string {
    return this.nameOf[i];
  }

  /** intern fills names and nameId (once). */
  intern(): void {
    if (this.nameId.length === this.n) return;
    const ids = new Int32Array(this.n);
    const index = new Map<string, number>();
    const names: string[] = [];
    const nameOf = this.nameOf;
    for (let i = 0; i < this.n; i++) {
      const s = nameOf[i];
      let id = index.get(s);
      if (id === undefined) {
        id = names.length;
        names.push(s);
        index.set(s, id);
      }
      ids[i] = id;
    }
    this.names = names;
    this.nameId = ids;
  }

  /** path returns the frames from below the root down to node i. */
  path(i: number): string[] {
    const out: string[] = [];
    for (let j = i; j > 0; j = this.parent[j]) out.push(this.name(j));
    return out.reverse();
  }

  /**
   * pathKey names node i by its depth and a 64-bit hash of its frame path:
   * "~<depth>.<16 hex digits>". The zoom URL uses it for paths too long to
   * spell out (a frame 100,000 deep would make a URL of megabytes); it is
   * stable across reloads and time ranges, like the path it stands for.
   */
  pathKey(i: number): string {
    this.hashPaths();
    const hex = (x: number) => (x >>> 0).toString(16).padStart(8, '0');
    return `~${this.depth[i]}.${hex(this.pathHashA[i])}${hex(this.pathHashB[i])}`;
  }

  /** findKey resolves a pathKey to a node index (-1 when the key is malformed or no node has that path). */
  findKey(key: string): number {
    const k = /^~(\d+)\.([0-9a-f]{8})([0-9a-f]{8})$/.exec(key);
    if (!k) return -1;
    const d = +k[1];
    if (d > this.maxDepth) return -1;
    this.hashPaths();
    const a = parseInt(k[2], 16) | 0;
    const b = parseInt(k[3], 16) | 0;
    const row = this.row(d);
    for (let j = 0; j < row.length; j++) {
      const i = row[j];
      if (this.pathHashA[i] === a && this.pathHashB[i] === b) return i;
    }
    return -1;
  }

  private pathHashA = new Int32Array(0);
  private pathHashB = new Int32Array(0);

  /** hashPaths fills the path hashes of every node (once): parents come before children, so one pass does. */
  private hashPaths(): void {
    if (this.pathHashA.length === this.n) return;
    this.intern();
    const nh = this.names.length;
    const na = new Int32Array(nh);
    const nb = new Int32Array(nh);
    for (let k = 0; k < nh; k++) {
      const s = this.names[k];
      let a = 0x811c9dc5 | 0;
      let b = 0x9747b28c | 0;
      for (let c = 0; c < s.length; c++) {
        const ch = s.charCodeAt(c);
        a = Math.imul(a ^ ch, 0x01000193);
        b = Math.imul(b ^ ch, 0x5bd1e995);
        b ^= b >>> 15;
      }
      na[k] = a;
      nb[k] = b;
    }
    const ha = new Int32Array(this.n);
    const hb = new Int32Array(this.n);
    const mix = (h: number, x: number, m: number) => {
      h = Math.imul(h ^ x, m);
      h ^= h >>> 13;
      h = Math.imul(h, 0xc2b2ae35);
      return h ^ (h >>> 16);
    };
    for (let i = 1; i < this.n; i++) {
      const p = this.parent[i];
      const id = this.nameId[i];
      ha[i] = mix(ha[p], na[id], 0x85ebca6b);
      hb[i] = mix(hb[p] ^ 0x27d4eb2f, nb[id], 0x9e3779b1 | 0);
    }
    this.pathHashA = ha;
    this.pathHashB = hb;
  }

  /** children returns the child indexes of node i (a contiguous slice of the next row). */
  children(i: number): Int32Array {
    const d = this.depth[i] + 1;
    if (d > this.maxDepth) return new Int32Array(0);
    const row = this.row(d);
    const s = this.start[i];
    let lo = 0;
    let hi = row.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.start[row[mid]] < s) lo = mid + 1;
      else hi = mid;
    }
    // Zero-width nodes of an earlier parent may share the start.
    while (lo < row.length && this.parent[row[lo]] !== i && this.start[row[lo]] <= s) lo++;
    let k = lo;
    while (k < row.length && this.parent[row[k]] === i) k++;
    return row.subarray(lo, k);
  }

  /** find resolves a frame path to a node index; it returns the deepest node found and how many frames matched. */
  find(path: string[]): { index: number; matched: number } {
    let cur = 0;
    let matched = 0;
    for (const frame of path) {
      const kids = this.children(cur);
      let next = -1;
      for (let k = 0; k < kids.length; k++) {
        if (this.name(kids[k]) === frame) { next = kids[k]; break; }
      }
      if (next < 0) break;
      cur = next;
      matched++;
    }
    return { index: cur, matched };
  }

  /**
   * match marks the names for which pred is true and returns the mask (per
   * name id) and the fraction of the root covered by matching nodes (a node
   * under a matching ancestor is not counted twice).
   */
  match(pred: (name: string) => boolean): { mask: Uint8Array; fraction: number; nodes: number } {
    this.intern();
    const mask = new Uint8Array(this.names.length);
    for (let k = 0; k < this.names.length; k++) mask[k] = pred(this.names[k]) ? 1 : 0;
    const covered = new Uint8Array(this.n);
    let sum = 0;
    let nodes = 0;
    for (let i = 0; i < this.n; i++) {
      const p = i === 0 ? -1 : this.parent[i];
      const inherited = p >= 0 ? covered[p] : 0;
      if (mask[this.nameId[i]]) {
        nodes++;
        if (!inherited) sum += this.value[i];
        covered[i] = 1;
      } else {
        covered[i] = inherited;
      }
    }
    const root = this.value[0] || 1;
    return { mask, fraction: sum / root, nodes };
  }
}

/** lowerBoundEnd returns the first k in row whose node ends after v. */
export function lowerBoundEnd(m: FlameModel, row: Int32Array, v: number): number {
  let lo = 0;
  let hi = row.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    const i = row[mid];
    if (m.start[i] + m.value[i] > v) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

/** lastStartAtOrBefore returns the last k in row whose node starts at or before v (-1 if none). */
export function lastStartAtOrBefore(m: FlameModel, row: Int32Array, v: number): number {
  let lo = 0;
  let hi = row.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (m.start[row[mid]] <= v) lo = mid + 1;
    else hi = mid;
  }
  return lo - 1;
}

function byName(a: TreeNode, b: TreeNode): number {
  if (!a.other !== !b.other) return a.other ? 1 : -1;
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

function sortedKids(c: TreeNode[]): TreeNode[] {
  for (let k = 1; k < c.length; k++) {
    if (byName(c[k - 1], c[k]) > 0) return c.slice().sort(byName);
  }
  return c;
}

/**
 * flatten converts the API tree into a FlameModel. Children are laid out left
 * to right sorted by name ("other" last) so the layout is stable between time
 * ranges; a node's self time is the gap at its right end. It allocates little
 * besides the typed arrays: for 64K nodes the garbage collector, not the walk,
 * is what costs, so names are interned later (see intern).
 */
export function flatten(root: TreeNode, diff = false): FlameModel {
  // Pass 1: count nodes.
  let n = 0;
  const stack: TreeNode[] = [root];
  while (stack.length) {
    const t = stack.pop()!;
    n++;
    const c = t.children;
    if (c) for (let k = 0; k < c.length; k++) stack.push(c[k]);
  }
  const m = new FlameModel(n, diff);
  const { nameOf, parent, depth, start, value, self, other, base } = m;
  const selfGiven = new Uint8Array(n);
  const childSum = new Float64Array(n);
  const nextOff = new Float64Array(n);
  // Pass 2: pre-order walk with children in name order; parent and depth
  // ride along in typed-array stacks.
  const sParent = new Int32Array(n);
  const sDepth = new Int32Array(n);
  stack.push(root);
  sParent[0] = -1;
  let sp = 1;
  let maxDepth = 0;
  for (let i = 0; sp > 0; i++) {
    sp--;
    const t = stack.pop()!;
    const p = sParent[sp];
    const d = sDepth[sp];
    nameOf[i] = t.name;
    parent[i] = p;
    depth[i] = d;
    if (d > maxDepth) maxDepth = d;
    const v = +t.value || 0;
    value[i] = v;
    if (t.other) other[i] = 1;
    if (base) base[i] = +(t.base || 0);
    if (t.self != null) { self[i] = +t.self; selfGiven[i] = 1; }
    if (p >= 0) {
      start[i] = nextOff[p];
      nextOff[p] += v;
      childSum[p] += v;
    }
    nextOff[i] = start[i];
    const c = t.children;
    if (c && c.length) {
      const kids = sortedKids(c);
      for (let k = kids.length - 1; k >= 0; k--) {
        stack.push(kids[k]);
        sParent[sp] = i;
        sDepth[sp] = d + 1;
        sp++;
      }
    }
  }
  m.maxDepth = maxDepth;
  // Rows: pre-order visits each depth left to right, so one counting pass
  // and one fill pass give sorted rows in a single buffer.
  const rowStart = new Int32Array(maxDepth + 2);
  for (let i = 0; i < n; i++) rowStart[depth[i] + 1]++;
  for (let d = 0; d <= maxDepth; d++) rowStart[d + 1] += rowStart[d];
  const fillAt = rowStart.slice(0, maxDepth + 1);
  const buf = new Int32Array(n);
  for (let i = 0; i < n; i++) buf[fillAt[depth[i]]++] = i;
  m.rowBuf = buf;
  m.rowStart = rowStart;
  const maxSub = m.maxSub;
  for (let i = 0; i < n; i++) {
    maxSub[i] = depth[i];
    if (!selfGiven[i]) self[i] = Math.max(0, value[i] - childSum[i]);
  }
  for (let i = n - 1; i > 0; i--) {
    const p = parent[i];
    if (maxSub[i] > maxSub[p]) maxSub[p] = maxSub[i];
  }
  m.total = root.total != null ? +root.total : value[0];
  m.baseTotal = root.base_total != null ? +root.base_total : base ? base[0] : 0;
  return m;
}
