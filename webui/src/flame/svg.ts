// SVG export of the graph as currently shown (zoom, orientation, highlight).

import { FlameGraph, ROW_H, FONT } from './renderer';

function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]!));
}

/** toSVG renders the visible flame graph as a standalone SVG document. */
export function toSVG(g: FlameGraph, title: string): string {
  const m = g.model;
  const W = g.width || 1200;
  const H = g.height || ROW_H;
  const th = g.theme;
  const top = 24;
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H + top}" viewBox="0 0 ${W} ${H + top}" font-family='${FONT.replace(/^[\d.]+px /, '')}' font-size="11.5">`);
  out.push(`<rect width="100%" height="100%" fill="${esc(th.bg)}"/>`);
  out.push(`<text x="4" y="16" font-size="13" fill="${esc(th.text)}">${esc(title)}</text>`);
  out.push(`<g transform="translate(0,${top})">`);
  if (m) {
    const root = m.value[0] || 1;
    g.layout({
      rect(i, x, y, w, ancestor) {
        const name = m.name(i);
        const pct = ((m.value[i] / root) * 100).toFixed(2);
        out.push(`<g${ancestor ? ' opacity="0.55"' : ''}><title>${esc(name)} — ${m.value[i]} samples (${pct}%), self ${m.self[i]}</title>` +
          `<rect x="${x.toFixed(2)}" y="${y}" width="${Math.max(w >= 3 ? w - 1 : w, 0).toFixed(2)}" height="${ROW_H - 1}" fill="${esc(g.fill(i))}"/>`);
        const label = w >= 22 ? g.fit(name, w - 6) : '';
        if (label) out.push(`<text x="${(Math.max(x, 0) + 3).toFixed(2)}" y="${y + ROW_H / 2 + 4}" fill="${esc(th.text)}">${esc(label)}</text>`);
        out.push('</g>');
      },
      sliver(x, y, w, matched) {
        out.push(`<rect x="${x.toFixed(2)}" y="${y}" width="${w.toFixed(2)}" height="${ROW_H - 1}" fill="${esc(matched ? th.match : th.sliver)}"/>`);
      },
    }, W);
  }
  out.push('</g></svg>');
  return out.join('\n');
}
