// Leads per day as bars in the <svg id="per-day-chart">, drawn at the size it is shown so the
// labels stay readable from a phone to a wide screen; redrawn when that size changes.

import { byId, svg } from './dom.js';
import { debounce } from './events.js';
import { dayLabel, fmtNum, str } from './format.js';

const chart = byId('per-day-chart');
let shownDays = [];
let drawnWidth = 0;

// days: [{day: "YYYY-MM-DD", count}], oldest first; the last one is today.
export function renderChart(days) {
  shownDays = days;
  const measured = Math.round(chart.getBoundingClientRect().width);
  const W = measured >= 200 ? measured : 600;
  drawnWidth = W;
  const H = W < 480 ? 150 : 180, left = 34, right = 6, top = 10, bottom = 24;
  chart.setAttribute('viewBox', '0 0 ' + W + ' ' + H);
  const plotW = W - left - right, plotH = H - top - bottom;
  const n = days.length;
  const counts = days.map((d) => Math.max(0, Number(d.count) || 0));
  const maxCount = counts.reduce((m, c) => Math.max(m, c), 0);
  // Round steps (1, 2, 5, 10, 20, 50 …) with at most four of them up to the top of the scale.
  let step = 1;
  for (let mag = 1; ; mag *= 10) {
    const s = [1, 2, 5].map((m) => m * mag).find((c) => Math.ceil(maxCount / c) <= 4);
    if (s) {
      step = s;
      break;
    }
  }
  const scaleMax = Math.max(1, Math.ceil(maxCount / step)) * step;
  const nodes = [];

  for (let v = 0; v <= scaleMax; v += step) {
    const y = top + plotH - (v / scaleMax) * plotH;
    nodes.push(svg('line', { class: v === 0 ? 'axis' : 'grid', x1: left, x2: W - right, y1: y, y2: y }));
    const t = svg('text', { class: 'tick', x: left - 6, y: y + 4, 'text-anchor': 'end' });
    t.textContent = fmtNum(v);
    nodes.push(t);
  }

  if (n > 0) {
    const slot = plotW / n;
    const barW = Math.max(1, slot * 0.7);
    let busiest = null;
    days.forEach((d, i) => {
      const c = counts[i];
      if (!busiest || c > busiest.count) busiest = { day: d.day, count: c };
      const h = c > 0 ? Math.max(2, (c / scaleMax) * plotH) : 1;
      const x = left + i * slot + (slot - barW) / 2;
      const y = top + plotH - h;
      const g = svg('g', { class: 'bar' + (i === n - 1 ? ' today' : '') + (c === 0 ? ' zero' : '') });
      const title = svg('title', {});
      title.textContent = dayLabel(d.day) + ': ' + fmtNum(c) + (c === 1 ? ' lead' : ' leads');
      g.appendChild(title);
      g.appendChild(svg('rect', { x: x.toFixed(1), y: y.toFixed(1), width: barW.toFixed(1), height: h.toFixed(1), rx: 1.5 }));
      // A taller invisible hit area so the tooltip works on small bars.
      g.appendChild(svg('rect', { class: 'hit', x: (left + i * slot).toFixed(1), y: top, width: slot.toFixed(1), height: plotH }));
      g.dataset.day = str(d.day);
      g.dataset.count = String(c);
      nodes.push(g);
    });
    const labelIdx = n > 2 ? [0, Math.floor((n - 1) / 2), n - 1] : [...Array(n).keys()];
    for (const i of labelIdx) {
      const anchor = i === 0 ? 'start' : i === n - 1 ? 'end' : 'middle';
      const x = i === 0 ? left : i === n - 1 ? W - right : left + i * slot + slot / 2;
      const t = svg('text', { class: 'tick', x: x.toFixed(1), y: H - 6, 'text-anchor': anchor });
      t.textContent = dayLabel(days[i].day);
      nodes.push(t);
    }
    const total = counts.reduce((a, b) => a + b, 0);
    chart.setAttribute('aria-label', maxCount === 0
      ? 'Leads per day: none in the last ' + n + ' days'
      : 'Leads per day over the last ' + n + ' days: ' + fmtNum(total) + ' in all, busiest ' +
        dayLabel(busiest.day) + ' with ' + fmtNum(busiest.count));
    if (maxCount === 0) {
      const t = svg('text', { class: 'chart-empty', x: left + plotW / 2, y: top + plotH / 2, 'text-anchor': 'middle' });
      t.textContent = 'No leads in these days';
      nodes.push(t);
    }
  }
  chart.replaceChildren(...nodes);
}

if (typeof ResizeObserver === 'function') {
  const redraw = debounce(() => {
    const w = Math.round(chart.getBoundingClientRect().width);
    if (shownDays.length && w >= 200 && Math.abs(w - drawnWidth) > 4) renderChart(shownDays);
  }, 150);
  new ResizeObserver(redraw).observe(chart.parentElement);
}
