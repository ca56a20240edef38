// Optimisation history: every trial's value by trial index, coloured by state, with the
// best-so-far line; trials without a value (failed, killed, ...) as marks along the bottom.

import { GRID_LINE, TOOLTIP, stateColor, tip } from './common.js';
import { num } from '../util/format.js';

const VALUED = ['Succeeded', 'EarlyStopped', 'Running', 'Failed', 'Killed', 'MetricsUnavailable', 'Pending'];

export function historyOption(model, metric, values, { log, minimize }) {
  const byState = new Map();
  const marks = new Map();
  const best = [];
  let bestValue = null;
  let points = 0;
  let lastX = 0;
  for (let r = 0; r < model.rows; r++) {
    const v = values[r];
    const state = model.state[r];
    const x = model.index[r];
    if (x > lastX) lastX = x;
    if (v === null || (log && v <= 0)) {
      if (state !== 'Running' && state !== 'Pending') {
        if (!marks.has(state)) marks.set(state, []);
        marks.get(state).push([x, 0.03, r]);
      }
      continue;
    }
    if (!byState.has(state)) byState.set(state, []);
    byState.get(state).push([x, v, r]);
    points++;
    if (state === 'Succeeded' && (bestValue === null || (minimize ? v < bestValue : v > bestValue))) {
      bestValue = v;
      best.push([x, v]);
    }
  }
  // The best-so-far line is a step line through each improvement, out to the last trial.
  if (best.length) best.push([lastX, bestValue]);

  const series = [];
  for (const state of VALUED) {
    if (!byState.has(state)) continue;
    series.push({
      name: state, type: 'scatter', data: byState.get(state), symbolSize: model.rows > 2000 ? 4 : model.rows > 300 ? 5 : 7,
      itemStyle: { color: stateColor(state), opacity: 0.75 },
      large: true, largeThreshold: 300, progressive: 0, emphasis: { disabled: true },
    });
  }
  series.push({
    name: 'Best so far', type: 'line', step: 'end', data: best, showSymbol: false,
    lineStyle: { color: '#d1242f', width: 2 }, itemStyle: { color: '#d1242f' }, silent: true, z: 5,
  });
  for (const [state, data] of marks) {
    series.push({
      name: state, type: 'scatter', data, yAxisIndex: 1, symbol: 'triangle', symbolSize: 7,
      itemStyle: { color: stateColor(state), opacity: 0.8 }, large: true, largeThreshold: 300, progressive: 0,
    });
  }
  const option = {
    grid: { left: 64, right: 20, top: 36, bottom: 48 },
    legend: { top: 0, type: 'scroll', itemWidth: 12, itemHeight: 8, textStyle: { fontSize: 11 } },
    tooltip: {
      ...TOOLTIP, trigger: 'item',
      formatter: (p) => {
        const r = p.data?.[2];
        if (r === undefined) return '';
        return tip(model.name[r], [['state', model.state[r]], [metric, values[r] === null ? 'no value' : num(values[r])]]);
      },
    },
    xAxis: { type: 'value', name: 'trial', nameLocation: 'middle', nameGap: 28, min: 'dataMin', max: 'dataMax', splitLine: GRID_LINE },
    yAxis: [
      { type: log ? 'log' : 'value', scale: true, name: metric, nameLocation: 'middle', nameGap: 48, splitLine: GRID_LINE,
        axisLabel: { formatter: (v) => num(v) } },
      // The marks' own axis: 0 is the bottom edge of the plot whatever the values are.
      { type: 'value', min: 0, max: 1, show: false },
    ],
    dataZoom: [{ type: 'inside', xAxisIndex: 0 }],
    series,
  };
  return { option, points };
}
