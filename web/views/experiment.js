// One experiment: its state and settings, the plots (history, learning curves, parallel
// coordinates, importance, slices, a pair of parameters, timeline), the trials table and the
// document as written. While it runs, /columns?since= brings the trials that changed every
// second and only their curves are fetched again.

import { api, HttpError, links } from '../api.js';
import { TrialsModel } from '../model.js';
import { echartsReady, Plot } from '../plots/common.js';
import { contourOption } from '../plots/contour.js';
import { curvesOption } from '../plots/curves.js';
import { historyOption } from '../plots/history.js';
import { importanceOption } from '../plots/importance.js';
import { parallelOption, selectedRows } from '../plots/parallel.js';
import { sliceHeight, sliceOption } from '../plots/slice.js';
import { timelineOption, trialAt } from '../plots/timeline.js';
import { TrialsTable } from '../table.js';
import { runTime } from './experiments.js';
import { el, replace } from '../util/dom.js';
import { badge, duration, FINISHED, num, time, TRIAL_STATES, value as fmtValue } from '../util/format.js';

const POLL_MS = 1000;
const IMPORTANCE_EVERY_MS = 10000;
const CHUNK = 500; // trial indices per /observations request while live (keeps URLs short)

export function mount(root, params, ctx) {
  const name = params.name;
  let disposed = false;
  let timer = 0;
  let model = null;
  let summary = null;
  let metric = null;
  let log = false;
  let lastImportance = 0;
  let importanceSucceeded = -1;
  let redrawCost = 0;
  let lastRedraw = 0;
  let dirty = false;
  let finalPolls = 0;
  let brushIntervals = new Map(); // parallel axis id → intervals, restored after a redraw
  let tab = params.tab;
  const plots = {};

  const status = el('div', { class: 'exp-status' });
  const stopArea = el('div', { class: 'stop-area' });
  const cards = el('div', { class: 'cards' });
  const metricSelect = el('select', { id: 'metric-select', 'aria-label': 'Metric to plot' });
  const logBox = el('input', { type: 'checkbox', id: 'log-scale' });
  const toolbar = el('div', { class: 'toolbar' },
    el('label', { for: 'metric-select' }, 'Metric '), metricSelect,
    el('label', { class: 'check', for: 'log-scale' }, logBox, ' log scale'));
  const contourX = el('select', { 'aria-label': 'Contour x parameter', id: 'contour-x' });
  const contourY = el('select', { 'aria-label': 'Contour y parameter', id: 'contour-y' });
  const docPre = el('pre', { class: 'document', id: 'document' }, 'Loading…');
  const tableBox = el('div', { class: 'table-box' });
  const title = el('h1', { class: 'exp-name' }, name);
  const errorBox = el('div', { class: 'error-box', hidden: true });

  function plotCard(key, heading, extra, wide, height) {
    const box = el('div', { class: 'plot', style: { height: `${height}px` } });
    const card = el('section', { class: `card plot-card${wide ? ' wide' : ''}` },
      el('div', { class: 'card-head' }, el('h2', null, heading), extra), box);
    plots[key] = { box, card };
    return card;
  }

  replace(root,
    el('div', { class: 'exp-head' }, el('div', null, title, status), stopArea),
    errorBox,
    cards,
    toolbar,
    el('div', { class: 'plot-grid' },
      plotCard('history', 'Optimisation history', null, false, 330),
      plotCard('curves', 'Learning curves', null, false, 330),
      plotCard('importance', 'Parameter importance', null, false, 300),
      plotCard('contour', 'Parameter pair', el('span', { class: 'pair' }, contourX, ' × ', contourY), false, 300),
      plotCard('slice', 'Slices', null, true, 240),
      plotCard('timeline', 'Timeline', null, true, 260),
      plotCard('parallel', 'Parallel coordinates', el('span', { class: 'muted hint' }, 'drag along an axis to filter the trials below'), true, 360),
    ),
    el('section', { class: 'card wide', id: 'trials' }, el('div', { class: 'card-head' }, el('h2', null, 'Trials')), tableBox),
    el('details', { class: 'card wide doc-card' }, el('summary', null, el('h2', null, 'Experiment document')), docPre),
  );
  const table = new TrialsTable(tableBox, (row) => {
    location.hash = links.trial(name, model.name[row]);
  });
  table.onClearBrush = () => {
    brushIntervals = new Map();
    const chart = plots.parallel.plot?.chart;
    if (!chart) return;
    for (const id of ['value', ...model.parameters.map((_, k) => `p${k}`)]) {
      chart.dispatchAction({ type: 'axisAreaSelect', parallelAxisId: id, intervals: [] });
    }
    table.setBrush(null);
  };

  // The charts, once ECharts is in (it loads while the data requests run).
  function initCharts() {
    for (const key of Object.keys(plots)) plots[key].plot = new Plot(plots[key].box, key);
    plots.parallel.plot.chart.on('axisareaselected', (event) => {
      if (event.parallelAxisId) brushIntervals.set(event.parallelAxisId, event.intervals || []);
      table.setBrush(selectedRows(plots.parallel.plot.chart, plots.parallel.rows || []));
    });
    // A click on a point opens its trial.
    for (const key of ['history', 'slice', 'contour', 'curves']) {
      plots[key].plot.chart.on('click', (p) => {
        const r = Array.isArray(p.data) ? p.data[key === 'contour' ? 3 : 2] : undefined;
        if (r !== undefined && model.name[r] !== undefined) location.hash = links.trial(name, model.name[r]);
      });
    }
    // The timeline's bars are one path per state: the page finds the bar under the pointer.
    const hover = el('div', { class: 'hover-tip', hidden: true });
    plots.timeline.box.parentElement.style.position = 'relative';
    plots.timeline.card.append(hover);
    const zr = plots.timeline.plot.chart.getZr();
    zr.on('mousemove', (e) => {
      const row = model ? trialAt(plots.timeline.plot.chart, model, e.offsetX, e.offsetY) : null;
      hover.hidden = row === null;
      zr.setCursorStyle(row === null ? 'default' : 'pointer');
      if (row === null) return;
      replace(hover, el('strong', null, model.name[row]), el('div', null, badge(model.state[row]), ' ', duration(model.duration(row))),
        el('div', { class: 'muted' }, time(model.started[row])));
      hover.style.left = `${Math.min(e.offsetX + 14, plots.timeline.box.clientWidth - 220)}px`;
      hover.style.top = `${plots.timeline.box.offsetTop + e.offsetY + 14}px`;
    });
    zr.on('globalout', () => { hover.hidden = true; });
    zr.on('click', (e) => {
      const row = model ? trialAt(plots.timeline.plot.chart, model, e.offsetX, e.offsetY) : null;
      if (row !== null) location.hash = links.trial(name, model.name[row]);
    });
  }

  metricSelect.addEventListener('change', () => changeMetric(metricSelect.value));
  logBox.addEventListener('change', () => {
    log = logBox.checked;
    redraw();
  });
  contourX.addEventListener('change', () => drawContour());
  contourY.addEventListener('change', () => drawContour());

  function fail(error) {
    if (disposed) return;
    errorBox.hidden = false;
    if (error instanceof HttpError && error.status === 404) {
      replace(errorBox, `No experiment named “${name}” in this store. `, el('a', { href: links.experiments() }, 'All experiments'));
    } else {
      replace(errorBox, el('strong', null, 'Error: '), error.message || String(error));
    }
  }

  // ---- summary -------------------------------------------------------------------------

  function spec() {
    return summary?.spec || {};
  }

  function renderStatus() {
    const state = model?.experiment?.state ?? summary?.state;
    const reason = model?.experiment?.reason ?? summary?.reason;
    const message = model?.experiment?.message ?? summary?.message;
    replace(status, badge(state), reason ? el('span', { class: 'reason' }, reason) : null,
      message ? el('span', { class: 'message', id: 'exp-message' }, message) : null);
    document.title = `${name} · tuneflow`;
    renderStop(state);
  }

  let confirming = false;
  function renderStop(state) {
    const readOnly = ctx.info?.readOnly;
    const finished = FINISHED.has(state);
    const why = readOnly
      ? 'This dashboard is read-only (tuneflow dashboard): run `tuneflow stop EXPERIMENT` to stop it.'
      : finished ? `The experiment is finished (${state}).` : 'Stop the experiment: no new trial starts, running trials are stopped; running it again resumes it.';
    if (confirming && !readOnly && !finished) {
      replace(stopArea,
        el('span', { class: 'confirm-text' }, 'Stop this experiment?'),
        el('button', { type: 'button', class: 'danger', id: 'stop-confirm', on: { click: doStop } }, 'Yes, stop'),
        el('button', { type: 'button', id: 'stop-cancel', on: { click: () => { confirming = false; renderStop(state); } } }, 'Cancel'));
      return;
    }
    confirming = false;
    const button = el('button', { type: 'button', class: 'danger-outline', id: 'stop', title: why, disabled: readOnly || finished,
      on: { click: () => { confirming = true; renderStop(state); } } }, 'Stop');
    // A disabled button gets no hover events in some browsers: the tooltip sits on a wrapper.
    replace(stopArea, el('span', { title: why, class: 'stop-wrap' }, button));
  }

  async function doStop() {
    try {
      const answer = await api.stop(name);
      summary = answer;
      if (model) model.experiment = { state: answer.state, reason: answer.reason, message: answer.message };
      confirming = false;
      renderStatus();
      schedule(0);
    } catch (error) {
      confirming = false;
      renderStatus();
      fail(error);
    }
  }

  function kv(rows) {
    return el('dl', { class: 'kv' }, rows.filter(Boolean).flatMap(([k, v]) => [el('dt', null, k), el('dd', null, v)]));
  }

  function settings(list) {
    if (!list || !list.length) return el('span', { class: 'muted' }, 'defaults');
    return el('ul', { class: 'settings' }, list.map((s) => el('li', null, el('code', null, s.name), ' = ', el('code', null, s.value))));
  }

  function renderCards() {
    const s = spec();
    const objective = s.objective || {};
    const algorithm = s.algorithm || {};
    const stopping = s.earlyStopping ?? s.early_stopping;
    const counts = model ? model.counts() : {};
    const bestRow = model ? model.best() : null;
    const total = model ? model.rows : 0;
    const max = summary?.maxTrialCount ?? s.maxTrialCount ?? s.max_trial_count;
    const best = bestRow === null ? el('p', { class: 'muted' }, 'No trial has succeeded yet.') : el('div', null,
      el('p', { class: 'best-line' }, el('a', { href: links.trial(name, model.name[bestRow]), id: 'best-trial' }, model.name[bestRow]),
        ' ', el('strong', null, `${model.objective.metric} = ${num(model.objective[bestRow])}`)),
      kv(model.parameters.map((p) => [p.name, fmtValue(model.params[p.name][bestRow])])));
    replace(cards,
      el('section', { class: 'card' }, el('h2', null, 'Objective'), kv([
        ['metric', objective.metric ?? model?.objective.metric],
        ['direction', objective.direction ?? objective.type ?? model?.objective.direction],
        ['goal', objective.goal === null || objective.goal === undefined ? 'none' : num(objective.goal)],
        (objective.additional_metrics ?? objective.additionalMetricNames)?.length ? ['also', (objective.additional_metrics ?? objective.additionalMetricNames).join(', ')] : null,
      ])),
      el('section', { class: 'card' }, el('h2', null, 'Algorithm'), kv([
        ['name', algorithm.name ?? summary?.algorithm],
        ['seed', summary?.seed ?? '-'],
        ['settings', settings(algorithm.settings)],
        ['early stopping', stopping ? el('span', null, stopping.name, settings(stopping.settings)) : 'none'],
        summary?.stepsSaved !== null && summary?.stepsSaved !== undefined ? ['steps saved', String(summary.stepsSaved)] : null,
      ])),
      el('section', { class: 'card' }, el('h2', null, 'Trials'),
        el('p', { class: 'big-count' }, `${total}${max ? ` of ${max}` : ''}`, el('span', { class: 'muted' }, ` · ${summary?.parallelTrialCount ?? s.parallel_trial_count ?? '?'} in parallel`)),
        el('div', { class: 'counts', id: 'counts' }, TRIAL_STATES.filter((st) => counts[st]).map((st) =>
          el('span', { class: 'count', dataset: { state: st } }, badge(st), ` ${counts[st]}`))),
        kv([['created', time(summary?.createdAt)], ['duration', duration(summary ? runTime({ ...summary, state: model?.experiment?.state ?? summary.state }) : null)], ['driver', summary?.driver ?? '-']])),
      el('section', { class: 'card' }, el('h2', null, 'Best trial'), best),
    );
  }

  // ---- plots ---------------------------------------------------------------------------

  function minimizes(m) {
    const strategies = spec().objective?.metric_strategies ?? spec().objective?.metricStrategies ?? [];
    const s = strategies.find((x) => x.name === m);
    if (m !== model.objective.metric && s && s.strategy !== 'latest') return s.strategy === 'min';
    return model.minimizes(m);
  }

  function canLog(values, curves) {
    for (const v of values) if (v !== null && v <= 0) return false;
    if (curves) for (const c of curves) if (c) for (const v of c.values) if (v <= 0) return false;
    return true;
  }

  function drawContour(values = model.values(metric)) {
    const params = model.parameters;
    if (params.length < 2) return plots.contour.plot.empty('Needs two parameters');
    const px = params.find((p) => p.name === contourX.value) || params[0];
    const py = params.find((p) => p.name === contourY.value) || params[1];
    const { option, points } = contourOption(model, metric, values, px, py, { minimize: minimizes(metric) });
    return plots.contour.plot.draw(option, points);
  }

  function drawParallel(values) {
    const { option, points, rows } = parallelOption(model, metric, values, { minimize: minimizes(metric) });
    plots.parallel.rows = rows;
    const chart = plots.parallel.plot.chart;
    const done = plots.parallel.plot.draw(option, points);
    // A redraw rebuilds the axes: put the brush back and filter the table again.
    if (brushIntervals.size) {
      for (const [id, intervals] of brushIntervals) chart.dispatchAction({ type: 'axisAreaSelect', parallelAxisId: id, intervals });
    } else if (table.brush) {
      table.setBrush(null);
    }
    return done;
  }

  async function redraw() {
    if (!model || disposed || !plots.history.plot) return;
    const t0 = performance.now();
    const values = model.values(metric);
    const curves = model.curves.get(metric);
    const logOk = canLog(values, curves);
    logBox.disabled = !logOk;
    logBox.parentElement.title = logOk ? 'Log scale for the value axes' : 'Some values are not positive: no log scale';
    if (!logOk) logBox.checked = log = false;
    const minimize = minimizes(metric);
    plots.slice.box.style.height = `${sliceHeight(model.parameters.length)}px`;
    const h = historyOption(model, metric, values, { log, minimize });
    const c = curvesOption(model, metric, curves, { log });
    const s = sliceOption(model, metric, values, { log });
    const t = timelineOption(model, { height: plots.timeline.box.clientHeight - 64 });
    const jobs = [
      plots.history.plot.draw(h.option, h.points),
      plots.curves.plot.draw(c.option, c.points),
      plots.slice.plot.draw(s.option, s.points),
      plots.timeline.plot.draw(t.option, t.points),
      drawContour(values),
      drawParallel(values),
    ];
    table.setData(model, metric, values);
    renderCards();
    renderStatus();
    await Promise.all(jobs);
    redrawCost = performance.now() - t0;
    lastRedraw = performance.now();
    dirty = false;
  }

  function fetchImportance(m) {
    return (m ? api.importance(name, m) : api.importance(name)).catch((error) => {
      if (error instanceof HttpError) return { parameters: [], error: error.message };
      throw error;
    });
  }

  async function drawImportance(answer) {
    lastImportance = performance.now();
    importanceSucceeded = model.counts().Succeeded || 0;
    if (!answer.parameters?.length) {
      await plots.importance.plot.empty(answer.error ? `Importance unavailable: ${answer.error}` : 'Needs at least two succeeded trials with a value');
      return;
    }
    const { option, points } = importanceOption(answer);
    await plots.importance.plot.draw(option, points);
  }

  async function loadImportance() {
    const m = metric;
    const answer = await fetchImportance(m);
    if (!disposed && m === metric) await drawImportance(answer);
  }

  async function loadCurves(m) {
    if (m === metric && model.curves.has(m)) return;
    const obs = await api.observations(name, m);
    if (!disposed) model.setCurves(m, obs);
  }

  async function changeMetric(m) {
    metric = m;
    // Brushes on the value axis meant the old metric.
    brushIntervals.delete('value');
    try {
      await Promise.all([loadCurves(m), loadImportance()]);
      if (m === metric) await redraw();
    } catch (error) {
      fail(error);
    }
  }

  // ---- live updates --------------------------------------------------------------------

  function schedule(ms = POLL_MS) {
    clearTimeout(timer);
    if (!disposed) timer = setTimeout(poll, ms);
  }

  async function poll() {
    if (disposed || !ctx.isCurrent()) return;
    try {
      const before = model.experiment?.state;
      const delta = await api.columns(name, model.cursor);
      if (disposed) return;
      const changed = model.apply(delta);
      const refresh = new Set(changed);
      for (let r = 0; r < model.rows; r++) if (model.state[r] === 'Running') refresh.add(r);
      const rows = [...refresh];
      // The metric may change while this poll waits: the answers say which metric they hold.
      const m = metric;
      for (let i = 0; i < rows.length; i += CHUNK) {
        const part = rows.slice(i, i + CHUNK);
        const obs = await api.observations(name, m, part.map((r) => model.index[r]));
        if (disposed) return;
        if (!model.curves.has(obs.metric)) break; // switched away and dropped meanwhile
        if (model.setCurves(obs.metric, obs, part) && obs.metric === metric) dirty = true;
      }
      // Curves of other metrics are stale now; they are fetched again when chosen.
      for (const k of [...model.curves.keys()]) if (k !== m && k !== metric && rows.length) model.curves.delete(k);
      if (changed.length || before !== model.experiment?.state) dirty = true;
      if (before !== model.experiment?.state && FINISHED.has(model.experiment?.state)) {
        summary = await api.experiment(name);
      }
      // The forest behind importance is not free: refit now and then, and at the end.
      const succeeded = model.counts().Succeeded || 0;
      if (succeeded !== importanceSucceeded && (performance.now() - lastImportance > IMPORTANCE_EVERY_MS || model.finished)) {
        loadImportance().catch(fail);
      }
      // Redraw at most as often as drawing allows: a 10,000-trial redraw is not free, and
      // drawing may take at most about half of the page's time.
      if (dirty && performance.now() - lastRedraw >= Math.max(POLL_MS - 50, 2 * redrawCost)) await redraw();
    } catch (error) {
      fail(error);
      return; // a 401 shows the token form; anything else: stop polling, the error says why
    }
    if (model.finished) {
      // One last poll after the experiment finished collects the last trials' ends.
      if (finalPolls++ >= 1) {
        if (dirty) await redraw();
        if (!disposed) ctx.setLive(false);
        return;
      }
    }
    if (disposed) return;
    ctx.setLive(true);
    schedule();
  }

  // ---- start ---------------------------------------------------------------------------

  async function start() {
    const t0 = performance.now();
    // Everything the first draw needs, at once, while ECharts loads: /observations and
    // /importance default to the objective metric, so they need not wait for /columns.
    // fANOVA may take a while on many trials: the other plots do not wait for it.
    const importance = fetchImportance();
    // The charts are made as soon as ECharts is in, while the answers are still coming.
    const charts = echartsReady().then(() => { if (!disposed) initCharts(); });
    const experimentAnswer = api.experiment(name);
    const columnsAnswer = api.columns(name);
    const observationsAnswer = api.observations(name);
    // Awaited below, maybe after it failed: no unhandled rejection meanwhile.
    charts.catch(() => {});
    const [exp, columns, obs] = await Promise.all([experimentAnswer, columnsAnswer, observationsAnswer]);
    if (disposed) return;
    window.tuneflowTimings.dataLoaded = performance.now() - t0;
    summary = exp;
    model = new TrialsModel(columns);
    metric = model.objective.metric;
    model.setCurves(obs.metric, obs);
    replace(metricSelect, model.metrics.map((m) => el('option', { value: m }, m === model.objective.metric ? `${m} (objective)` : m)));
    metricSelect.value = metric;
    const pOpts = (sel, k) => {
      replace(sel, model.parameters.map((p) => el('option', { value: p.name }, p.name)));
      if (model.parameters[k]) sel.value = model.parameters[k].name;
    };
    pOpts(contourX, 0);
    pOpts(contourY, 1);
    // Not needed to draw: asked for once the rest is in, so it does not compete with it.
    api.document(name).then((d) => { docPre.textContent = d.document; }, (error) => { docPre.textContent = `(no document: ${error.message})`; });
    await charts;
    if (disposed) return;
    await Promise.all([redraw(), importance.then((answer) => !disposed && drawImportance(answer))]);
    if (disposed) return;
    window.tuneflowTimings.drawn = redrawCost;
    const now = performance.now();
    window.tuneflowTimings.experiment = now; // since navigation start
    window.tuneflowTimings.experimentRoute = now - (window.tuneflowTimings.routeStart ?? t0);
    document.body.dataset.ready = 'experiment';
    if (tab === 'trials') document.getElementById('trials')?.scrollIntoView();
    ctx.setLive(!model.finished);
    if (!model.finished) schedule();
  }

  start().catch(fail);

  return {
    update(next) {
      tab = next.tab;
      if (tab === 'trials') document.getElementById('trials')?.scrollIntoView();
      else window.scrollTo(0, 0);
    },
    dispose() {
      disposed = true;
      clearTimeout(timer);
      table.dispose();
      for (const p of Object.values(plots)) p.plot?.dispose();
    },
  };
}
