// Parallel coordinates over the parameters and the value. Brushing an axis (drag along it)
// selects trials; `selectedRows` reads ECharts' own result so the trials table filters on
// exactly the lines left highlighted.

import { TOOLTIP, colourRange, tip } from './common.js';
import { num, value as fmtValue } from '../util/format.js';

export function parallelOption(model, metric, values, { minimize }) {
  const params = model.parameters;
  const rows = [];
  const data = [];
  const valued = [];
  for (let r = 0; r < model.rows; r++) {
    const v = values[r];
    if (v === null) continue;
    const line = new Array(params.length + 1);
    for (let k = 0; k < params.length; k++) {
      const x = model.params[params[k].name][r];
      line[k] = params[k].type === 'categorical' ? String(x) : x;
    }
    line[params.length] = v;
    valued.push(v);
    data.push(line);
    rows.push(r);
  }
  const [lo, hi] = colourRange(valued);
  const axes = params.map((p, k) => {
    const axis = { id: `p${k}`, dim: k, name: p.name, nameTextStyle: { color: '#444', fontSize: 11 }, nameTruncate: { maxWidth: 120 } };
    if (p.type === 'categorical') return { ...axis, type: 'category', data: (p.values || []).map(String) };
    if (p.log) return { ...axis, type: 'log' };
    return { ...axis, type: 'value', scale: true };
  });
  axes.push({ id: 'value', dim: params.length, name: metric, type: 'value', scale: true, nameTextStyle: { color: '#111', fontWeight: 'bold', fontSize: 11 },
    axisLabel: { formatter: (v) => num(v) } });
  const option = {
    parallel: { left: 56, right: 72, top: 40, bottom: 28, parallelAxisDefault: {
      nameLocation: 'end', nameGap: 12, axisLabel: { fontSize: 10, color: '#3d444d', textBorderColor: '#fff', textBorderWidth: 3, formatter: (v) => (typeof v === 'number' ? num(v) : v) },
      areaSelectStyle: { width: 16, color: 'rgba(47,111,223,0.25)', borderColor: '#2f6fdf' },
    } },
    parallelAxis: axes,
    // Good values are dark: the eye finds the lines that matter.
    // The value axis is the legend of the colours.
    visualMap: data.length ? {
      show: false, type: 'continuous', dimension: params.length, min: lo, max: hi,
      inRange: { color: minimize ? ['#123f8c', '#5f97e0', '#f1c27d', '#e8743b'] : ['#e8743b', '#f1c27d', '#5f97e0', '#123f8c'] },
    } : undefined,
    tooltip: {
      ...TOOLTIP, trigger: 'item',
      formatter: (p) => {
        const r = rows[p.dataIndex];
        if (r === undefined) return '';
        return tip(model.name[r], [...params.map((q) => [q.name, fmtValue(model.params[q.name][r])]), [metric, num(values[r])]]);
      },
    },
    series: [{
      // Hover on thousands of lines tells nothing and costs ~40% of the draw: only few are live.
      // Above progressiveThreshold (3,000) the lines are one progressive chunk: still drawn
      // inside setOption, but on their own layer, which ECharts then does not paint a second
      // time on the next frame as it does the normal one (~100 ms at 10,000 lines).
      type: 'parallel', data, smooth: false, progressive: Math.max(1, data.length), silent: data.length > 2000,
      lineStyle: { width: data.length > 2000 ? 0.6 : 1, opacity: data.length > 2000 ? 0.35 : 0.6 },
      inactiveOpacity: 0.03, activeOpacity: 0.9, emphasis: { disabled: true },
    }],
  };
  return { option, points: data.length, rows };
}

/** The rows (model positions) of the lines the brush leaves selected; null without a brush. */
export function selectedRows(chart, rows) {
  const series = chart.getModel()?.getSeriesByType('parallel')?.[0];
  if (!series) return null;
  // No inactive line: no brush, or one that keeps every line; either way, no filter.
  if (!series.getRawIndicesByActiveState('inactive').length) return null;
  const active = series.getRawIndicesByActiveState('active');
  return new Set(active.map((i) => rows[i]));
}
