// Two parameters against each other, each trial a point coloured by its value: where the
// good region is and how the two interact. ECharts' large scatter mode draws 10,000 points
// in a few ms but ignores per-point colours (and normal mode takes ~500 ms), so the points
// are split into colour bands, each its own large series; a visualMap over an empty series
// shows the scale.

import { GRID_LINE, TOOLTIP, colourRange, parameterAxis, tip } from './common.js';
import { num, value as fmtValue } from '../util/format.js';

const BANDS = 12;
const LOW = [26, 79, 168]; // the best values' colour when minimising
const MID = [241, 194, 125];
const HIGH = [232, 116, 59];

function mix(a, b, t) {
  return `rgb(${a.map((x, i) => Math.round(x + (b[i] - x) * t)).join(',')})`;
}

function band(k, minimize) {
  const t = k / (BANDS - 1);
  const u = minimize ? t : 1 - t;
  return u < 0.5 ? mix(LOW, MID, u * 2) : mix(MID, HIGH, (u - 0.5) * 2);
}

export function contourOption(model, metric, values, px, py, { minimize }) {
  const xs = model.params[px.name];
  const ys = model.params[py.name];
  const rows = [];
  for (let r = 0; r < model.rows; r++) {
    const v = values[r];
    const x = xs[r];
    const y = ys[r];
    if (v === null || x === null || y === null || x === undefined || y === undefined) continue;
    if ((px.log && x <= 0) || (py.log && y <= 0)) continue;
    rows.push(r);
  }
  const [lo, hi] = colourRange(rows.map((r) => values[r]));
  const bands = Array.from({ length: BANDS }, () => []);
  const span = hi - lo || 1;
  for (const r of rows) {
    const k = Math.max(0, Math.min(BANDS - 1, Math.floor(((values[r] - lo) / span) * BANDS)));
    bands[k].push([px.type === 'categorical' ? String(xs[r]) : xs[r], py.type === 'categorical' ? String(ys[r]) : ys[r], values[r], r]);
  }
  const size = rows.length > 2000 ? 4 : 7;
  // The best band is drawn last, on top.
  const order = [...bands.keys()];
  if (minimize) order.reverse();
  const series = order.filter((k) => bands[k].length).map((k) => ({
    type: 'scatter', data: bands[k], symbolSize: size, itemStyle: { color: band(k, minimize), opacity: 0.9 },
    large: true, largeThreshold: 300, progressive: 0, emphasis: { disabled: true },
  }));
  series.push({ id: 'scale', type: 'scatter', data: [], silent: true });
  const option = {
    grid: { left: 70, right: 90, top: 20, bottom: 50 },
    xAxis: parameterAxis(px, { splitLine: GRID_LINE, nameGap: 28, axisLabel: { hideOverlap: true, formatter: px.type === 'categorical' ? undefined : (v) => num(v) } }),
    yAxis: parameterAxis(py, { splitLine: GRID_LINE, nameGap: 52, axisLabel: { formatter: py.type === 'categorical' ? undefined : (v) => num(v) } }),
    visualMap: rows.length ? {
      type: 'continuous', seriesIndex: series.length - 1, min: lo, max: hi, right: 4, top: 'middle', itemHeight: 140, itemWidth: 10,
      text: [num(hi), num(lo)], textStyle: { fontSize: 10 }, calculable: false,
      inRange: { color: minimize ? [band(0, true), band(BANDS / 2, true), band(BANDS - 1, true)] : [band(0, false), band(BANDS / 2, false), band(BANDS - 1, false)] },
    } : undefined,
    tooltip: {
      ...TOOLTIP, trigger: 'item',
      formatter: (p) => {
        const r = p.data?.[3];
        if (r === undefined) return '';
        return tip(model.name[r], [[px.name, fmtValue(xs[r])], [py.name, fmtValue(ys[r])], [metric, num(values[r])]]);
      },
    },
    series,
  };
  return { option, points: rows.length };
}
