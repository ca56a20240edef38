// What every plot shares: one ECharts instance per container (canvas renderer), no
// animation, tooltips whose HTML is built from escaped text, and the test hooks
// (data-plot on the container, data-points once drawn).

import { escapeHtml } from '../util/escape.js';
import { STATE_COLORS } from '../util/format.js';

// ECharts (~1 MB) loads with `async` (index.html), so the data requests do not wait for it:
// a view awaits echartsReady() before it makes its first chart.
let loading = null;
export function echartsReady() {
  if (window.echarts) return Promise.resolve(window.echarts);
  if (!loading) {
    loading = new Promise((resolve, reject) => {
      const script = document.querySelector('script[src$="/echarts.min.js"]');
      const settle = () => (window.echarts ? resolve(window.echarts) : reject(new Error('Cannot load ECharts')));
      // An async script has run (or failed) before the window's load event.
      if (!script || document.readyState === 'complete') {
        settle();
        return;
      }
      script.addEventListener('load', settle, { once: true });
      script.addEventListener('error', settle, { once: true });
      window.addEventListener('load', settle, { once: true });
    });
  }
  return loading;
}

export const BASE = {
  animation: false,
  // Charts draw text on canvas; tooltips are HTML, so every string in them is escaped.
  textStyle: { fontFamily: 'system-ui, -apple-system, "Segoe UI", Roboto, sans-serif' },
};

export const TOOLTIP = {
  confine: true,
  transitionDuration: 0,
  backgroundColor: 'rgba(255,255,255,0.97)',
  borderColor: '#d0d7de',
  textStyle: { color: '#1f2328', fontSize: 12 },
  extraCssText: 'box-shadow: 0 2px 8px rgba(0,0,0,.12); max-width: 360px; white-space: normal;',
};

/** A tooltip body: a title line and `label: value` rows, all escaped. */
export function tip(title, rows) {
  const lines = rows
    .filter(([, v]) => v !== undefined && v !== null)
    .map(([k, v]) => `<div><span style="color:#656d76">${escapeHtml(k)}:</span> ${escapeHtml(v)}</div>`);
  return `<div style="font-weight:600;margin-bottom:2px">${escapeHtml(title)}</div>${lines.join('')}`;
}

export function stateColor(state) {
  return STATE_COLORS[state] || '#555';
}

/**
 * A plot in `container` (only once echartsReady() resolved): `draw(option, points)` sets the whole option and resolves once
 * ECharts has finished rendering it (progressive chunks included), then writes data-points.
 */
export class Plot {
  constructor(container, name) {
    this.container = container;
    container.dataset.plot = name;
    this.chart = window.echarts.init(container, null, { renderer: 'canvas' });
    this.resize = new ResizeObserver(() => this.fit());
    this.resize.observe(container);
  }

  /** Resizes the chart to its container, only when the size changed: a resize redraws the
   *  whole chart, which at 10,000 trials is not free. */
  fit() {
    const { clientWidth: w, clientHeight: h } = this.container;
    if (w && h && (w !== this.chart.getWidth() || h !== this.chart.getHeight())) this.chart.resize();
  }

  draw(option, points) {
    delete this.container.dataset.points;
    return new Promise((resolve) => {
      let done = false;
      const finish = () => {
        if (done) return;
        done = true;
        this.chart.off('finished', finish);
        this.container.dataset.points = String(points);
        resolve();
      };
      this.chart.on('finished', finish);
      const t0 = performance.now();
      this.fit(); // before drawing, so a container that just changed size is drawn once
      this.chart.setOption({ ...BASE, ...option }, { notMerge: true });
      // How long the synchronous part took: the benchmark reads it to find slow plots.
      this.container.dataset.drawMs = (performance.now() - t0).toFixed(1);
      // 'finished' is only emitted when something was rendered; an empty or hidden chart
      // still counts as drawn on the next frame.
      requestAnimationFrame(() => requestAnimationFrame(() => {
        if (!this.chart.getZr().painter || this.container.offsetWidth === 0) finish();
      }));
    });
  }

  /** Shows a sentence instead of a chart (not enough data). */
  empty(text, points = 0) {
    return this.draw({ title: { text, left: 'center', top: 'middle', textStyle: { color: '#8c959f', fontSize: 13, fontWeight: 'normal' } } }, points);
  }

  dispose() {
    this.resize.disconnect();
    this.chart.dispose();
  }
}

/** An axis for a parameter: log for log-scale ones, categories for categorical ones. */
export function parameterAxis(p, extra = {}) {
  const name = { name: p.name, nameLocation: 'middle', nameGap: 24, nameTextStyle: { color: '#444' } };
  if (p.type === 'categorical') {
    // Long categories are cut (the tooltip has them whole); every one is labelled.
    const axisLabel = { interval: 0, width: 90, overflow: 'truncate', ...(extra.axisLabel || {}) };
    return { type: 'category', data: (p.values || []).map(String), ...name, ...extra, axisLabel };
  }
  if (p.log) return { type: 'log', ...name, ...extra };
  return { type: 'value', scale: true, ...name, ...extra };
}

export const GRID_LINE = { lineStyle: { color: '#eef0f2' } };

/** The `q` quantile of the numbers in `values` (a copy is sorted). */
export function quantile(values, q) {
  if (!values.length) return NaN;
  const sorted = Float64Array.from(values).sort();
  const at = Math.min(sorted.length - 1, Math.max(0, Math.round(q * (sorted.length - 1))));
  return sorted[at];
}

/** A colour scale's range: the 2nd to 98th percentile, so a few outliers do not wash out
 *  the rest (values beyond take the end colours). */
export function colourRange(values) {
  if (!values.length) return [0, 1];
  let lo = quantile(values, 0.02);
  let hi = quantile(values, 0.98);
  if (!(hi > lo)) {
    lo = values.reduce((a, b) => Math.min(a, b));
    hi = values.reduce((a, b) => Math.max(a, b));
  }
  return hi > lo ? [lo, hi] : [lo, lo + 1];
}
