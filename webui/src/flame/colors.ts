// Frame colours: by runtime (from the frame-name suffix), or by normalized
// delta in a diff.

/** Runtime describes one frame-suffix family and its hue range. */
export interface Runtime { key: string; label: string; hue: number; spread: number }

/** RUNTIMES are the suffixes the gProfiler agent emits ('' = no suffix, native code). */
export const RUNTIMES: Runtime[] = [
  { key: '', label: 'Native', hue: 6, spread: 14 },
  { key: 'k', label: 'Kernel', hue: 30, spread: 8 },
  { key: 'p', label: 'Python', hue: 50, spread: 6 },
  { key: 'pe', label: 'Python ext.', hue: 68, spread: 6 },
  { key: 'pn', label: 'Python native', hue: 86, spread: 6 },
  { key: 'j', label: 'Java JIT', hue: 122, spread: 14 },
  { key: 'i', label: 'Java inlined', hue: 170, spread: 10 },
  { key: 's', label: '_[s]', hue: 198, spread: 8 },
  { key: 'php', label: 'PHP', hue: 232, spread: 10 },
  { key: 'net', label: '.NET', hue: 268, spread: 10 },
  { key: 'rb', label: 'Ruby', hue: 340, spread: 10 },
];

const byKey = new Map(RUNTIMES.map((r) => [r.key, r]));
const SUFFIX = /_\[([^\]\s]{1,12})\]$/;

/** suffixOf returns the runtime suffix of a frame name ('' when none). */
export function suffixOf(name: string): string {
  const m = SUFFIX.exec(name);
  return m ? m[1] : '';
}

/** hash is 32-bit FNV-1a. */
export function hash(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** runtimeOf returns the runtime for a suffix; unknown suffixes get a stable hashed hue. */
export function runtimeOf(key: string): Runtime {
  const r = byKey.get(key);
  if (r) return r;
  const made = { key, label: `_[${key}]`, hue: hash(key) % 360, spread: 8 };
  byKey.set(key, made);
  return made;
}

/** SHADES is how many colour variants a runtime has; frames hash to one. */
export const SHADES = 10;

/** shadeOf picks a frame's variant within its runtime's hue range. */
export function shadeOf(name: string): number {
  return hash(name) % SHADES;
}

/** hslHex converts HSL (degrees, percent, percent) to #rrggbb, which canvas parses fastest. */
export function hslHex(h: number, s: number, l: number): string {
  s /= 100;
  l /= 100;
  const k = (n: number) => (n + h / 30) % 12;
  const a = s * Math.min(l, 1 - l);
  const f = (n: number) => {
    const v = l - a * Math.max(-1, Math.min(k(n) - 3, Math.min(9 - k(n), 1)));
    return Math.round(v * 255).toString(16).padStart(2, '0');
  };
  return '#' + f(0) + f(8) + f(4);
}

/** shadeColor returns variant `shade` of a runtime's colour. */
export function shadeColor(r: Runtime, shade: number, dark: boolean): string {
  const t = shade / (SHADES - 1); // 0..1
  const hue = (r.hue + (t - 0.5) * r.spread + 360) % 360;
  const sat = 62 + ((shade * 7) % 20);
  const light = (dark ? 46 : 60) + ((shade * 5) % 12);
  return hslHex(hue, sat, light);
}

/** legendColor is the representative colour of a runtime. */
export function legendColor(r: Runtime, dark: boolean): string {
  return hslHex(r.hue, 70, dark ? 52 : 64);
}

/** DIFF_STEPS is the number of colour steps on each side of a diff palette. */
export const DIFF_STEPS = 24;

/** diffPalette returns 2*DIFF_STEPS+1 colours from blue (shrink) through neutral to red (growth). */
export function diffPalette(dark: boolean): string[] {
  const out: string[] = [];
  for (let k = -DIFF_STEPS; k <= DIFF_STEPS; k++) {
    const t = Math.abs(k) / DIFF_STEPS;
    if (k === 0) {
      out.push(dark ? hslHex(220, 6, 40) : hslHex(220, 8, 86));
      continue;
    }
    const hue = k > 0 ? 0 : 218;
    const sat = 40 + 45 * t;
    const light = dark ? 40 + 8 * (1 - t) : 88 - 36 * t;
    out.push(hslHex(hue, sat, light));
  }
  return out;
}

/** diffBucket maps a normalized delta in [-1, 1] to a palette index. */
export function diffBucket(t: number): number {
  const c = Math.max(-1, Math.min(1, t));
  // sqrt keeps small but real changes visible.
  const s = Math.sign(c) * Math.sqrt(Math.abs(c));
  return Math.round(s * DIFF_STEPS) + DIFF_STEPS;
}
