// One experiment's trials as the page holds them: the columns of /columns, merged by trial
// index as live updates arrive, and each metric's curves from /observations. Plots and the
// trials table read rows (positions in these arrays) and never copy the data.

import { FINISHED } from './util/format.js';

const FIELDS = ['index', 'name', 'state', 'objective', 'step', 'created', 'started', 'completed', 'message'];

export class TrialsModel {
  constructor(columns) {
    this.cursor = null;
    this.rows = 0;
    this.rowOf = new Map(); // trial index → row
    for (const f of FIELDS) this[f] = [];
    this.params = {}; // parameter name → values by row
    this.curves = new Map(); // metric → array by row of {steps, values} (or undefined)
    this.apply(columns);
  }

  /** Merges an answer of /columns; returns the rows that are new or differ. (An answer
   *  with `since` repeats the trials of the last few seconds; those that did not change do
   *  not count, so an idle experiment is not redrawn every second.) */
  apply(columns) {
    this.cursor = columns.cursor;
    this.experiment = columns.experiment;
    this.objective = columns.objective;
    this.metrics = columns.metrics;
    this.parameters = columns.parameters;
    for (const p of this.parameters) if (!this.params[p.name]) this.params[p.name] = new Array(this.rows).fill(null);
    const t = columns.trials;
    const changed = [];
    for (let i = 0; i < t.index.length; i++) {
      let row = this.rowOf.get(t.index[i]);
      let differs = false;
      if (row === undefined) {
        row = this.rows++;
        this.rowOf.set(t.index[i], row);
        differs = true;
      }
      for (const f of FIELDS) {
        const v = t[f] ? t[f][i] : null;
        if (this[f][row] !== v) differs = true;
        this[f][row] = v;
      }
      for (const p of this.parameters) this.params[p.name][row] = t.parameters?.[p.name]?.[i] ?? null;
      if (differs) changed.push(row);
    }
    return changed;
  }

  get finished() {
    return FINISHED.has(this.experiment?.state);
  }

  /** Stores every curve of `metric` from an /observations answer (sorted by trial, step);
   *  returns whether any curve changed. */
  setCurves(metric, obs, onlyRows) {
    let curves = this.curves.get(metric);
    if (!curves || !onlyRows) {
      curves = new Array(this.rows);
      this.curves.set(metric, curves);
    }
    // The answer replaces the curves of the trials asked for, including those that have none.
    const before = onlyRows ? onlyRows.map((row) => curves[row]) : null;
    if (onlyRows) for (const row of onlyRows) curves[row] = undefined;
    const { trial, step, value } = obs;
    let i = 0;
    while (i < trial.length) {
      const index = trial[i];
      let j = i;
      while (j < trial.length && trial[j] === index) j++;
      const row = this.rowOf.get(index);
      if (row !== undefined) curves[row] = { steps: step.slice(i, j), values: value.slice(i, j) };
      i = j;
    }
    if (!onlyRows) return true;
    return onlyRows.some((row, k) => !sameCurve(before[k], curves[row]));
  }

  /** Each row's value of `metric`: the objective for the objective metric, otherwise the
   *  metric's last observation (null when the trial has none). */
  values(metric) {
    const out = new Array(this.rows);
    if (metric === this.objective.metric) {
      for (let r = 0; r < this.rows; r++) out[r] = this.objective_(r);
      return out;
    }
    const curves = this.curves.get(metric) || [];
    for (let r = 0; r < this.rows; r++) {
      const c = curves[r];
      out[r] = c && c.values.length ? c.values[c.values.length - 1] : null;
    }
    return out;
  }

  objective_(row) {
    const v = this.objective[row];
    return typeof v === 'number' ? v : null;
  }

  /** Whether smaller values of `metric` are better (the objective's direction; for other
   *  metrics a guess from the name, used only to draw a best-so-far line). */
  minimizes(metric) {
    if (metric === this.objective.metric) return this.objective.direction !== 'maximize';
    return !/acc|auc|f1|precision|recall|score|reward|r2|map|ndcg|bleu|iou/i.test(metric);
  }

  /** Counts by state. */
  counts() {
    const counts = {};
    for (let r = 0; r < this.rows; r++) counts[this.state[r]] = (counts[this.state[r]] || 0) + 1;
    return counts;
  }

  /** The best Succeeded trial (the engine's rule: Succeeded trials with an objective). */
  best() {
    const min = this.objective.direction !== 'maximize';
    let best = -1;
    for (let r = 0; r < this.rows; r++) {
      if (this.state[r] !== 'Succeeded') continue;
      const v = this.objective_(r);
      if (v === null) continue;
      if (best < 0 || (min ? v < this.objective[best] : v > this.objective[best])) best = r;
    }
    return best < 0 ? null : best;
  }

  /** Run time in seconds (to now for a running trial), or null. */
  duration(row, now = Date.now()) {
    const s = this.started[row];
    if (s === null || s === undefined) return null;
    const c = this.completed[row] ?? (this.state[row] === 'Running' ? now : null);
    return c === null ? null : (c - s) / 1000;
  }
}

function sameCurve(a, b) {
  if (!a || !b) return !a && !b;
  const n = a.steps.length;
  if (n !== b.steps.length) return false;
  for (let i = 0; i < n; i++) if (a.steps[i] !== b.steps[i] || a.values[i] !== b.values[i]) return false;
  return true;
}
