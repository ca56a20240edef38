// One trial: parameters, a curve per metric, its events, message and the end of its log.
// Refreshed every 2 s while it runs.

import { api, HttpError, links } from '../api.js';
import { echartsReady, GRID_LINE, Plot, TOOLTIP, tip } from '../plots/common.js';
import { el, replace } from '../util/dom.js';
import { badge, duration, num, time, value as fmtValue } from '../util/format.js';

const REFRESH_MS = 2000;

export function mount(root, params, ctx) {
  const { name, trial } = params;
  let disposed = false;
  let timer = 0;
  const charts = new Map(); // metric → Plot

  const head = el('div', { class: 'exp-head' });
  const message = el('div', { class: 'trial-message' });
  const paramsBox = el('div');
  const infoBox = el('div');
  const curvesBox = el('div', { class: 'metric-grid' });
  const eventsBox = el('div');
  const logPre = el('pre', { class: 'log', id: 'log' }, 'Loading…');
  const logNote = el('span', { class: 'muted' });
  const errorBox = el('div', { class: 'error-box', hidden: true });
  replace(root, head, errorBox, message,
    el('div', { class: 'cards' },
      el('section', { class: 'card' }, el('h2', null, 'Parameters'), paramsBox),
      el('section', { class: 'card' }, el('h2', null, 'Run'), infoBox),
      el('section', { class: 'card span2' }, el('h2', null, 'Events'), eventsBox)),
    el('section', { class: 'card wide' }, el('h2', null, 'Metrics'), curvesBox),
    el('section', { class: 'card wide' }, el('div', { class: 'card-head' }, el('h2', null, 'Log'), logNote), logPre));
  document.title = `${trial} · tuneflow`;

  function kv(rows) {
    return el('dl', { class: 'kv' }, rows.flatMap(([k, v]) => [el('dt', null, k), el('dd', null, v)]));
  }

  function drawCurves(observations) {
    const byMetric = new Map();
    for (const o of observations) {
      if (!byMetric.has(o.metric)) byMetric.set(o.metric, []);
      byMetric.get(o.metric).push([o.step, o.value]);
    }
    if (!byMetric.size) {
      replace(curvesBox, el('p', { class: 'muted' }, 'No observations.'));
      charts.forEach((p) => p.dispose());
      charts.clear();
      return [];
    }
    const jobs = [];
    for (const [metric, data] of byMetric) {
      let plot = charts.get(metric);
      if (!plot) {
        const box = el('div', { class: 'plot', style: { height: '240px' }, dataset: { metric } });
        curvesBox.append(el('div', { class: 'metric-card' }, el('h3', null, metric), box));
        plot = new Plot(box, 'metric');
        charts.set(metric, plot);
      }
      data.sort((a, b) => a[0] - b[0]);
      jobs.push(plot.draw({
        grid: { left: 60, right: 16, top: 12, bottom: 36 },
        xAxis: { type: 'value', name: 'step', nameLocation: 'middle', nameGap: 24, min: 'dataMin', max: 'dataMax', splitLine: GRID_LINE },
        yAxis: { type: 'value', scale: true, splitLine: GRID_LINE, axisLabel: { formatter: (v) => num(v) } },
        tooltip: { ...TOOLTIP, trigger: 'axis', formatter: (ps) => tip(`step ${ps[0]?.data?.[0]}`, [[metric, num(ps[0]?.data?.[1])]]) },
        series: [{ type: 'line', data, showSymbol: data.length < 60, symbolSize: 4, lineStyle: { width: 2, color: '#2f6fdf' }, itemStyle: { color: '#2f6fdf' } }],
      }, data.length));
    }
    return jobs;
  }

  async function load(first) {
    const [t, events, log] = await Promise.all([
      api.trial(name, trial),
      api.events(name, trial).catch((error) => ({ error })),
      api.log(name, trial).catch((error) => ({ error })),
    ]);
    if (disposed) return;
    replace(head, el('div', null, el('h1', { class: 'exp-name' }, t.name), el('div', { class: 'exp-status' }, badge(t.state),
      el('span', { class: 'muted' }, ' trial ', String(t.index), ' of ', el('a', { href: links.experiment(name) }, name)))));
    replace(message, t.message ? el('p', { class: 'message-box', id: 'trial-message' }, t.message) : null);
    replace(paramsBox, kv(Object.entries(t.parameters || {}).map(([k, v]) => [k, fmtValue(v)])));
    replace(infoBox, kv([
      ['objective', num(t.objective)], ['last step', t.step ?? '-'], ['attempts', String(t.attempts ?? '-')],
      ['created', time(t.createdAt)], ['started', time(t.startedAt)], ['completed', time(t.completedAt)],
      ['duration', duration(t.durationSeconds ?? (t.startedAt && !t.completedAt ? (Date.now() - Date.parse(t.startedAt)) / 1000 : null))],
    ]));
    if (events.error) replace(eventsBox, el('p', { class: 'muted' }, `No events: ${events.error.message}`));
    else replace(eventsBox, el('table', { class: 'events', id: 'events' },
      el('thead', null, el('tr', null, el('th', null, 'time'), el('th', null, 'state'), el('th', null, 'message'))),
      el('tbody', null, (events.events || []).map((e) => el('tr', null, el('td', null, time(e.timestamp)), el('td', null, badge(e.state)), el('td', null, e.message ?? ''))))));
    if (log.error) {
      logPre.textContent = log.error instanceof HttpError && log.error.status === 404 ? 'no log' : `no log (${log.error.message})`;
      logNote.textContent = '';
    } else {
      logPre.textContent = (log.lines || []).join('\n');
      logNote.textContent = `${log.path ?? log.source ?? ''}${log.truncated ? ' · last lines only' : ''}`;
      if (first) logPre.scrollTop = logPre.scrollHeight;
    }
    await echartsReady();
    if (disposed) return;
    await Promise.all(drawCurves(t.observations || []));
    if (disposed) return;
    if (first) {
      document.body.dataset.ready = 'trial';
      window.tuneflowTimings.trial = performance.now();
    }
    const running = t.state === 'Running' || t.state === 'Pending';
    ctx.setLive(running);
    if (running) timer = setTimeout(() => load(false).catch(fail), REFRESH_MS);
  }

  function fail(error) {
    if (disposed || error.name === 'Unauthorized') return;
    errorBox.hidden = false;
    if (error instanceof HttpError && error.status === 404) replace(errorBox, `No trial “${trial}” in experiment “${name}”. `, el('a', { href: links.experiment(name) }, 'Back to the experiment'));
    else replace(errorBox, el('strong', null, 'Error: '), error.message || String(error));
  }

  load(true).catch(fail);

  return {
    dispose() {
      disposed = true;
      clearTimeout(timer);
      charts.forEach((p) => p.dispose());
    },
  };
}
