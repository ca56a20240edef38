// Parameter importance from /importance (fANOVA, computed by the server): one bar each.

import { GRID_LINE, TOOLTIP, tip } from './common.js';

export function importanceOption(answer) {
  const params = [...(answer?.parameters || [])].reverse(); // most important at the top
  const option = {
    grid: { left: 8, right: 48, top: 24, bottom: 28, containLabel: true },
    title: { text: `${answer?.method || 'fanova'} over ${answer?.trials ?? 0} trials`, right: 8, top: 0, textStyle: { fontSize: 11, color: '#8c959f', fontWeight: 'normal' } },
    tooltip: { ...TOOLTIP, trigger: 'item', formatter: (p) => tip(params[p.dataIndex]?.name ?? '', [['importance', `${(p.value * 100).toFixed(1)}%`]]) },
    xAxis: { type: 'value', max: 1, splitLine: GRID_LINE, axisLabel: { formatter: (v) => `${Math.round(v * 100)}%` } },
    yAxis: { type: 'category', data: params.map((p) => p.name), axisLabel: { width: 140, overflow: 'truncate' } },
    series: [{
      type: 'bar', data: params.map((p) => p.importance), barMaxWidth: 22, itemStyle: { color: '#2f6fdf' },
      label: { show: true, position: 'right', fontSize: 11, formatter: (p) => `${(p.value * 100).toFixed(1)}%` },
    }],
  };
  return { option, points: params.length };
}
