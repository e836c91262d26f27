// Tiny DOM helpers: element construction, formatting and downloads.

export type Child = Node | string | number | null | undefined | false | Child[];
export type Attrs = Record<string, unknown>;

const PROPS = new Set(['value', 'checked', 'disabled', 'selected', 'indeterminate', 'readOnly']);

/** h creates an HTML element with attributes, event listeners (onX) and children. */
export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs?: Attrs | null, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  if (attrs) setAttrs(el, attrs);
  append(el, children);
  return el;
}

/** svg creates an SVG element. */
export function svg(tag: string, attrs?: Attrs | null, ...children: Child[]): SVGElement {
  const el = document.createElementNS('http://www.w3.org/2000/svg', tag);
  if (attrs) setAttrs(el, attrs);
  append(el, children);
  return el;
}

function setAttrs(el: Element, attrs: Attrs): void {
  for (const k in attrs) {
    const v = attrs[k];
    if (v == null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') {
      el.addEventListener(k.slice(2).toLowerCase(), v as EventListener);
    } else if (k === 'class') {
      el.setAttribute('class', String(v));
    } else if (k === 'style' && typeof v === 'object') {
      Object.assign((el as HTMLElement).style, v);
    } else if (k === 'dataset' && typeof v === 'object') {
      Object.assign((el as HTMLElement).dataset, v);
    } else if (PROPS.has(k)) {
      (el as any)[k] = v;
    } else {
      el.setAttribute(k, v === true ? '' : String(v));
    }
  }
}

/** append adds children (nested arrays flattened, falsy skipped). */
export function append(el: Node, children: Child[]): void {
  for (const c of children) {
    if (c == null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.appendChild(typeof c === 'object' ? c : document.createTextNode(String(c)));
  }
}

/** replace empties el and appends children. */
export function replace(el: Node, ...children: Child[]): void {
  while (el.firstChild) el.removeChild(el.firstChild);
  append(el, children);
}

/** fmtCount formats a count compactly: 1234 → 1.23K. */
export function fmtCount(n: number): string {
  const a = Math.abs(n);
  if (a < 1000) return String(Math.round(n));
  const units = ['K', 'M', 'G', 'T'];
  let u = -1;
  let v = n;
  while (Math.abs(v) >= 1000 && u < units.length - 1) { v /= 1000; u++; }
  return (Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) >= 10 ? v.toFixed(1) : v.toFixed(2)) + units[u];
}

/** fmtInt formats an integer with thousands separators. */
export function fmtInt(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

/** fmtPct formats a fraction (0..1) as a percentage. */
export function fmtPct(f: number): string {
  const p = f * 100;
  if (!isFinite(p)) return '–';
  if (p !== 0 && Math.abs(p) < 0.01) return (p < 0 ? '-' : '') + '<0.01%';
  return (Math.abs(p) >= 10 ? p.toFixed(1) : p.toFixed(2)) + '%';
}

function pad(n: number): string { return n < 10 ? '0' + n : String(n); }

/** fmtDateTime formats unix seconds as local "YYYY-MM-DD HH:MM". */
export function fmtDateTime(sec: number, withSeconds = false): string {
  const d = new Date(sec * 1000);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}` +
    (withSeconds ? ':' + pad(d.getSeconds()) : '');
}

/** toLocalInput formats unix seconds for an <input type=datetime-local>. */
export function toLocalInput(sec: number): string {
  return fmtDateTime(sec).replace(' ', 'T');
}

/** fromLocalInput parses an <input type=datetime-local> value to unix seconds. */
export function fromLocalInput(v: string): number | null {
  if (!v) return null;
  const t = new Date(v).getTime();
  return isNaN(t) ? null : Math.floor(t / 1000);
}

/** parseTime accepts RFC 3339 or unix seconds and returns unix seconds (NaN when invalid). */
export function parseTime(v: string | number): number {
  if (typeof v === 'number') return v;
  if (/^\d+(\.\d+)?$/.test(v)) return Number(v);
  return Date.parse(v) / 1000;
}

/** fmtAgo formats how long ago a time was ("3m ago"). */
export function fmtAgo(v: string | number): string {
  const t = parseTime(v);
  if (!isFinite(t) || t <= 0) return 'never';
  const s = Math.max(0, Date.now() / 1000 - t);
  if (s < 60) return `${Math.floor(s)}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ago`;
  return `${Math.floor(s / 86400)}d ago`;
}

/** download saves a blob under a file name. */
export function download(blob: Blob, name: string): void {
  const url = URL.createObjectURL(blob);
  const a = h('a', { href: url, download: name, style: { display: 'none' } });
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

/** copyText copies text to the clipboard, falling back to a hidden textarea. */
export async function copyText(text: string): Promise<boolean> {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    const ta = h('textarea', { style: { position: 'fixed', opacity: '0' } });
    ta.value = text;
    document.body.appendChild(ta);
    ta.select();
    let ok = false;
    try { ok = document.execCommand('copy'); } catch { ok = false; }
    ta.remove();
    return ok;
  }
}

/** copyButton returns a button that copies the text produced by get(). */
export function copyButton(get: () => string, label = 'Copy'): HTMLButtonElement {
  const b = h('button', { type: 'button', class: 'btn small' }, label);
  b.addEventListener('click', async () => {
    const ok = await copyText(get());
    b.textContent = ok ? 'Copied' : 'Copy failed';
    setTimeout(() => { b.textContent = label; }, 1500);
  });
  return b;
}

/** errorBox renders an error message. */
export function errorBox(err: unknown): HTMLElement {
  const e = err as { message?: string; detail?: string };
  return h('div', { class: 'error', role: 'alert' }, e?.message || String(err), e?.detail ? h('div', { class: 'muted' }, e.detail) : null);
}
