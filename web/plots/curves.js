// Learning curves: a metric by step for every trial. 10,000 trials × 20 steps is 200,000
// points: as ECharts line series that takes seconds, so each state is one `lines` series in
// large mode (one path, drawn in one go) whose data is a flat typed array of polylines
// ([count, x0, y0, x1, y1, ..., count, ...]). Lines series do not size the axes, so an
// invisible two-point scatter at the data's corners does. Early-stopped trials get a mark
// where they stopped.

import { GRID_LINE, TOOLTIP, stateColor, tip } from './common.js';
import { num } from '../util/format.js';

const ORDER = ['Succeeded', 'EarlyStopped', 'Failed', 'Killed', 'MetricsUnavailable', 'Pending', 'Running'];

export function curvesOption(model, metric, curves, { log }) {
  // First pass: how many points per state, to size the typed arrays.
  const sizes = new Map();
  let points = 0;
  for (let r = 0; r < model.rows; r++) {
    const c = curves?.[r];
    if (!c || !c.steps.length) continue;
    let n = c.steps.length;
    if (log) n = c.values.reduce((k, v) => k + (v > 0 ? 1 : 0), 0);
    if (!n) continue;
    const state = model.state[r];
    sizes.set(state, (sizes.get(state) || 0) + 1 + 2 * n);
    points += n;
  }
  const flats = new Map([...sizes].map(([state, size]) => [state, { data: new Float64Array(size), at: 0 }]));
  const stops = [];
  let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
  for (let r = 0; r < model.rows; r++) {
    const c = curves?.[r];
    if (!c || !c.steps.length) continue;
    const flat = flats.get(model.state[r]);
    if (!flat) continue;
    const countAt = flat.at++;
    let n = 0;
    for (let i = 0; i < c.steps.length; i++) {
      const x = c.steps[i];
      const v = c.values[i];
      if (log && v <= 0) continue;
      flat.data[flat.at++] = x;
      flat.data[flat.at++] = v;
      n++;
      if (x < x0) x0 = x;
      if (x > x1) x1 = x;
      if (v < y0) y0 = v;
      if (v > y1) y1 = v;
    }
    if (!n) { flat.at--; continue; }
    flat.data[countAt] = n;
    if (model.state[r] === 'EarlyStopped') stops.push([c.steps[c.steps.length - 1], c.values[c.values.length - 1], r]);
  }
  const many = points > 20000;
  const series = [];
  for (const state of ORDER) {
    const flat = flats.get(state);
    if (!flat) continue;
    series.push({
      name: state, type: 'lines', coordinateSystem: 'cartesian2d', polyline: true, large: true, largeThreshold: 0,
      progressive: 0, data: flat.data.subarray(0, flat.at), silent: true, z: state === 'Running' ? 4 : 2,
      // Running trials are few and the ones being watched: drawn on top, opaque.
      lineStyle: { width: state === 'Running' ? 1.5 : 1, color: stateColor(state), opacity: state === 'Running' ? 0.9 : many ? 0.2 : 0.45 },
      itemStyle: { color: stateColor(state) },
    });
  }
  if (points) {
    series.push({ name: 'extent', type: 'scatter', data: [[x0, y0], [x1, y1]], symbolSize: 0, silent: true, tooltip: { show: false }, legendHoverLink: false });
  }
  if (stops.length) {
    series.push({
      name: 'Stopped early here', type: 'scatter', data: stops, symbol: 'diamond', symbolSize: 6, z: 5,
      itemStyle: { color: stateColor('EarlyStopped'), borderColor: '#8a5a00', borderWidth: 0.5 },
      large: true, largeThreshold: 300, progressive: 0,
    });
  }
  const option = {
    grid: { left: 64, right: 20, top: 36, bottom: 48 },
    legend: { top: 0, type: 'scroll', itemWidth: 12, itemHeight: 8, textStyle: { fontSize: 11 }, data: [...ORDER.filter((s) => flats.has(s)), ...(stops.length ? ['Stopped early here'] : [])] },
    tooltip: {
      ...TOOLTIP, trigger: 'item',
      formatter: (p) => {
        const r = p.data?.[2];
        if (r === undefined) return '';
        return tip(model.name[r], [['stopped at step', p.data[0]], [metric, num(p.data[1])], ['message', model.message[r]]]);
      },
    },
    xAxis: { type: 'value', name: 'step', nameLocation: 'middle', nameGap: 28, min: 'dataMin', max: 'dataMax', splitLine: GRID_LINE },
    yAxis: { type: log ? 'log' : 'value', scale: true, name: metric, nameLocation: 'middle', nameGap: 48, splitLine: GRID_LINE,
      axisLabel: { formatter: (v) => num(v) } },
    series,
  };
  return { option, points };
}
