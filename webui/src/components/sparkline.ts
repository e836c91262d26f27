import { svg } from '../dom';

/** sparkline draws a small trend line (an area under a polyline) as inline SVG. */
export function sparkline(values: number[], width = 120, height = 24): SVGElement {
  const n = values.length;
  const max = Math.max(1, ...values);
  const pts: string[] = [];
  for (let k = 0; k < n; k++) {
    const x = n > 1 ? (k / (n - 1)) * (width - 2) + 1 : width / 2;
    const y = height - 1 - (values[k] / max) * (height - 3);
    pts.push(`${x.toFixed(1)},${y.toFixed(1)}`);
  }
  const area = n ? `1,${height - 1} ${pts.join(' ')} ${width - 1},${height - 1}` : '';
  return svg('svg', { class: 'spark', width, height, viewBox: `0 0 ${width} ${height}`, 'aria-hidden': 'true' },
    n ? svg('polygon', { points: area, class: 'spark-area' }) : null,
    n ? svg('polyline', { points: pts.join(' '), class: 'spark-line' }) : null);
}
