// Timeline: each trial a bar from its start to its end (now, while running), one row per
// trial, coloured by state. 10,000 bars as a custom series cost ~200 ms; as one large
// `lines` series per state (a bar is a thick two-point line) they cost a few ms. An
// invisible scatter gives the axes their extent (lines series do not).

import { GRID_LINE, TOOLTIP, stateColor } from './common.js';

// Drawing order: where thousands of rows share a pixel, the later states cover the earlier
// ones. Rare outcomes first, the bulk (Succeeded) over them, running trials on top.
const ORDER = ['Killed', 'MetricsUnavailable', 'Failed', 'EarlyStopped', 'Pending', 'Succeeded', 'Running'];

const LEGEND = ['Succeeded', 'Running', 'EarlyStopped', 'Failed', 'Killed', 'MetricsUnavailable', 'Pending'];

export function timelineOption(model, { now = Date.now(), height = 220 } = {}) {
  const byState = new Map();
  let t0 = Infinity, t1 = -Infinity, i0 = Infinity, i1 = -Infinity;
  let points = 0;
  for (let r = 0; r < model.rows; r++) {
    const s = model.started[r];
    if (s === null || s === undefined) continue;
    const e = Math.max(s, model.completed[r] ?? (model.state[r] === 'Running' ? now : s));
    const i = model.index[r];
    const state = model.state[r];
    if (!byState.has(state)) byState.set(state, []);
    byState.get(state).push(s, i, e, i);
    points++;
    if (s < t0) t0 = s;
    if (e > t1) t1 = e;
    if (i < i0) i0 = i;
    if (i > i1) i1 = i;
  }
  const rows = Math.max(1, i1 - i0 + 1);
  const width = Math.max(1, Math.min(10, (height / rows) * 0.8));
  const series = [];
  for (const state of ORDER) {
    const pairs = byState.get(state);
    if (!pairs) continue;
    // [2, x0, y0, x1, y1] per bar: the flat polyline format of a large lines series.
    const data = new Float64Array((pairs.length / 4) * 5);
    for (let k = 0, j = 0; k < pairs.length; k += 4) {
      data[j++] = 2;
      data[j++] = pairs[k];
      data[j++] = pairs[k + 1];
      data[j++] = pairs[k + 2] === pairs[k] ? pairs[k] + 1 : pairs[k + 2];
      data[j++] = pairs[k + 3];
    }
    series.push({
      name: state, type: 'lines', coordinateSystem: 'cartesian2d', polyline: true, large: true, largeThreshold: 0, progressive: 0,
      data, silent: true, lineStyle: { width, color: stateColor(state), opacity: 1, cap: 'butt' },
    });
  }
  if (points) series.push({ name: 'extent', type: 'scatter', data: [[t0, i0], [t1, i1]], symbolSize: 0, silent: true });
  const option = {
    grid: { left: 64, right: 20, top: 28, bottom: 36 },
    legend: { top: 0, itemWidth: 12, itemHeight: 8, textStyle: { fontSize: 11 }, data: LEGEND.filter((s) => byState.has(s)) },
    xAxis: { type: 'time', min: 'dataMin', max: 'dataMax', splitLine: GRID_LINE, axisLabel: { hideOverlap: true } },
    yAxis: { type: 'value', name: 'trial', nameLocation: 'middle', nameGap: 44, inverse: true, min: 'dataMin', max: 'dataMax', splitLine: { show: false } },
    tooltip: { ...TOOLTIP, show: false },
    series,
  };
  return { option, points };
}

/** The trial under the pointer: bars are drawn as one path, so the page finds it itself. */
export function trialAt(chart, model, offsetX, offsetY) {
  if (!chart.containPixel({ gridIndex: 0 }, [offsetX, offsetY])) return null;
  const [t, i] = chart.convertFromPixel({ gridIndex: 0 }, [offsetX, offsetY]);
  const index = Math.round(i);
  const row = model.rowOf.get(index);
  if (row === undefined) return null;
  const s = model.started[row];
  const e = model.completed[row] ?? (model.state[row] === 'Running' ? Date.now() : s);
  if (s === null || s === undefined) return null;
  // Half a pixel's worth of time either side, so short bars can still be hit.
  const slack = Math.abs(chart.convertFromPixel({ gridIndex: 0 }, [offsetX + 3, offsetY])[0] - t);
  return t >= s - slack && t <= e + slack ? row : null;
}
