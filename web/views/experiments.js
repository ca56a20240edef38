// Every experiment of the store, newest first, refreshed every 2 s; filter by text and state.

import { api, links } from '../api.js';
import { el, replace } from '../util/dom.js';
import { badge, COUNT_KEYS, duration, EXPERIMENT_STATES, FINISHED, num, STATE_COLORS, time, TRIAL_STATES } from '../util/format.js';

const REFRESH_MS = 2000;

/** Seconds from start to end, or to now while it runs; unknown for a finished experiment
 *  without an end time (a stopped one has none). */
export function runTime(e) {
  const started = e.startedAt ? Date.parse(e.startedAt) : null;
  if (started === null) return null;
  if (e.completedAt) return (Date.parse(e.completedAt) - started) / 1000;
  return FINISHED.has(e.state) ? null : (Date.now() - started) / 1000;
}

export function mount(root, _params, ctx) {
  let disposed = false;
  let timer = 0;
  let experiments = [];

  const text = el('input', { type: 'search', id: 'filter-text', placeholder: 'Filter by name, algorithm…', 'aria-label': 'Filter experiments' });
  const state = el('select', { id: 'filter-state', 'aria-label': 'Filter by state' },
    el('option', { value: '' }, 'All states'), EXPERIMENT_STATES.map((s) => el('option', { value: s }, s)));
  const tbody = el('tbody');
  const count = el('span', { class: 'muted' });
  const table = el('table', { class: 'experiments', id: 'experiments' },
    el('thead', null, el('tr', null, ['name', 'state', 'algorithm', 'trials', 'best', 'created', 'duration'].map((h) => el('th', { scope: 'col' }, h)))),
    tbody);
  const errorBox = el('div', { class: 'error-box', hidden: true });
  replace(root,
    el('div', { class: 'page-head' }, el('h1', null, 'Experiments'), count),
    el('div', { class: 'toolbar' }, text, state),
    errorBox,
    el('div', { class: 'card flush' }, table));
  text.addEventListener('input', render);
  state.addEventListener('change', render);
  document.title = 'Experiments · tuneflow';

  function trialsCell(e) {
    const counts = e.trials || {};
    const total = TRIAL_STATES.reduce((n, s) => n + (counts[COUNT_KEYS[s]] || 0), 0);
    const bar = el('div', { class: 'stack', title: TRIAL_STATES.filter((s) => counts[COUNT_KEYS[s]]).map((s) => `${s}: ${counts[COUNT_KEYS[s]]}`).join(', ') },
      TRIAL_STATES.filter((s) => counts[COUNT_KEYS[s]]).map((s) =>
        el('span', { style: { width: `${(100 * counts[COUNT_KEYS[s]]) / total}%`, background: STATE_COLORS[s] } })));
    const parts = TRIAL_STATES.filter((s) => counts[COUNT_KEYS[s]]).map((s) =>
      el('span', { class: 'mini', dataset: { state: s }, title: s }, el('i', { style: { background: STATE_COLORS[s] } }), String(counts[COUNT_KEYS[s]])));
    return el('td', { class: 'trials-cell' }, el('div', { class: 'total' }, `${total}${e.maxTrialCount ? ` / ${e.maxTrialCount}` : ''}`), total ? bar : null, el('div', { class: 'minis' }, parts));
  }

  function render() {
    const q = text.value.trim().toLowerCase();
    const s = state.value;
    const rows = experiments
      .filter((e) => (!s || e.state === s) && (!q || `${e.name} ${e.algorithm} ${e.state}`.toLowerCase().includes(q)))
      .sort((a, b) => Date.parse(b.createdAt) - Date.parse(a.createdAt) || String(a.name).localeCompare(String(b.name)));
    count.textContent = `${rows.length} of ${experiments.length}`;
    replace(tbody, rows.length ? rows.map((e) => {
      return el('tr', { dataset: { name: e.name } },
        el('td', { class: 'name' }, el('a', { href: links.experiment(e.name) }, e.name)),
        el('td', null, badge(e.state), e.reason ? el('div', { class: 'reason small' }, e.reason) : null),
        el('td', null, e.algorithm),
        trialsCell(e),
        el('td', { class: 'num' }, e.best ? num(e.best.objective) : '-', e.best ? el('div', { class: 'small muted' }, `${e.best.direction === 'maximize' ? 'max' : 'min'} ${e.best.metric}`) : null),
        el('td', null, time(e.createdAt)),
        el('td', { class: 'num' }, duration(runTime(e))));
    }) : el('tr', null, el('td', { colspan: 7, class: 'empty' }, experiments.length ? 'No experiment matches the filter.' : 'No experiments in this store yet. Create one with `tuneflow run` or the REST API.')));
  }

  async function refresh() {
    try {
      const answer = await api.experiments();
      if (disposed) return;
      experiments = answer.experiments || [];
      errorBox.hidden = true;
      render();
      document.body.dataset.ready = 'experiments';
      window.tuneflowTimings.experiments = performance.now();
      ctx.setLive(true);
    } catch (error) {
      if (disposed || error.name === 'Unauthorized') return;
      errorBox.hidden = false;
      errorBox.textContent = `Cannot list the experiments: ${error.message}`;
    }
    if (!disposed) timer = setTimeout(refresh, REFRESH_MS);
  }
  refresh();

  return {
    dispose() {
      disposed = true;
      clearTimeout(timer);
    },
  };
}
