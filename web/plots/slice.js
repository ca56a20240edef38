// Slice plots: the value against each parameter, one small panel per parameter in one
// chart (log axes for log-scale parameters, category axes for categorical ones).

import { TOOLTIP, GRID_LINE, parameterAxis, tip } from './common.js';
import { num, value as fmtValue } from '../util/format.js';

export const PANEL_HEIGHT = 220;
const PER_ROW = 3;

/** Height in pixels the chart needs for `count` parameters. */
export function sliceHeight(count) {
  return Math.max(1, Math.ceil(count / PER_ROW)) * PANEL_HEIGHT + 10;
}

export function sliceOption(model, metric, values, { log }) {
  const params = model.parameters;
  const grids = [];
  const xAxes = [];
  const yAxes = [];
  const series = [];
  let points = 0;
  const cols = Math.min(PER_ROW, Math.max(1, params.length));
  const width = 100 / cols;
  params.forEach((p, k) => {
    const col = k % cols;
    const row = Math.floor(k / cols);
    grids.push({ left: `${col * width + 4}%`, width: `${width - 7}%`, top: row * PANEL_HEIGHT + 20, height: PANEL_HEIGHT - 70, containLabel: false });
    xAxes.push(parameterAxis(p, { gridIndex: k, splitLine: GRID_LINE, axisLabel: { fontSize: 10, hideOverlap: true, formatter: p.type === 'categorical' ? undefined : (v) => num(v) } }));
    yAxes.push({ gridIndex: k, type: log ? 'log' : 'value', scale: true, splitLine: GRID_LINE, axisLabel: { fontSize: 10, formatter: (v) => num(v) },
      name: k % cols === 0 ? metric : '', nameTextStyle: { fontSize: 10 } });
    const xs = model.params[p.name];
    const data = [];
    for (let r = 0; r < model.rows; r++) {
      const v = values[r];
      const x = xs[r];
      if (v === null || x === null || x === undefined || (log && v <= 0) || (p.log && x <= 0)) continue;
      data.push([p.type === 'categorical' ? String(x) : x, v, r]);
    }
    points += data.length;
    series.push({
      type: 'scatter', xAxisIndex: k, yAxisIndex: k, data, symbolSize: data.length > 2000 ? 3 : data.length > 300 ? 4 : 6,
      itemStyle: { color: '#2f6fdf', opacity: data.length > 2000 ? 0.3 : 0.6 },
      large: true, largeThreshold: 300, progressive: 0, emphasis: { disabled: true },
    });
  });
  const option = {
    grid: grids, xAxis: xAxes, yAxis: yAxes, series,
    tooltip: {
      ...TOOLTIP, trigger: 'item',
      formatter: (p) => {
        const r = p.data?.[2];
        if (r === undefined) return '';
        return tip(model.name[r], [[params[p.seriesIndex].name, fmtValue(model.params[params[p.seriesIndex].name][r])], [metric, num(values[r])]]);
      },
    },
  };
  return { option, points };
}
