// Numbers, times and states for people, the same way the CLI writes them.

import { el } from './dom.js';

/** Six significant digits, trailing zeros dropped, exponent only for very small or large values
 *  (as `tuneflow`'s `summary::human`). */
export function num(value) {
  if (value === null || value === undefined || value === '') return '-';
  if (typeof value !== 'number') return String(value);
  if (value === 0 || !Number.isFinite(value)) return String(value);
  const magnitude = Math.floor(Math.log10(Math.abs(value)));
  if (magnitude >= -4 && magnitude < 9) {
    const text = value.toFixed(Math.max(0, 5 - magnitude));
    return text.includes('.') ? text.replace(/0+$/, '').replace(/\.$/, '') : text;
  }
  const [mantissa, exponent] = value.toExponential(5).split('e');
  return `${mantissa.replace(/0+$/, '').replace(/\.$/, '')}e${exponent[0] === '-' ? '' : '+'}${exponent.replace('+', '')}`;
}

/** A parameter value: numbers as `num`, categories as they are. */
export function value(v) {
  return typeof v === 'number' ? num(v) : v === null || v === undefined ? '-' : String(v);
}

/** Seconds as `850ms`, `12.5s`, `3m 20s`, `2h 5m`, `3d 4h`. */
export function duration(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return '-';
  if (seconds < 1) return `${Math.round(seconds * 1000)}ms`;
  if (seconds < 60) return `${Number(seconds.toFixed(1))}s`;
  const m = Math.floor(seconds / 60);
  if (m < 60) return `${m}m ${Math.round(seconds % 60)}s`;
  const h = Math.floor(m / 60);
  if (h < 24) return `${h}h ${m % 60}m`;
  return `${Math.floor(h / 24)}d ${h % 24}h`;
}

/** A time (RFC 3339 text or epoch milliseconds) in the browser's zone, to the second. */
export function time(t) {
  if (t === null || t === undefined) return '-';
  const d = new Date(t);
  if (Number.isNaN(d.getTime())) return String(t);
  const pad = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

// One colour per state, everywhere (badges, plots, the timeline).
export const STATE_COLORS = {
  Succeeded: '#2e9d4f',
  Running: '#2f6fdf',
  Failed: '#d64541',
  EarlyStopped: '#e0a020',
  Killed: '#7d8590',
  MetricsUnavailable: '#8a4fd0',
  Pending: '#b8bec6',
  // Experiment states.
  Created: '#b8bec6',
  Interrupted: '#7d8590',
};

export const TRIAL_STATES = ['Pending', 'Running', 'Succeeded', 'Failed', 'MetricsUnavailable', 'EarlyStopped', 'Killed'];
export const EXPERIMENT_STATES = ['Created', 'Running', 'Succeeded', 'Failed', 'Interrupted'];
export const FINISHED = new Set(['Succeeded', 'Failed', 'Interrupted']);

// The experiment summary's count keys, by state.
export const COUNT_KEYS = {
  Pending: 'pending', Running: 'running', Succeeded: 'succeeded', Failed: 'failed',
  MetricsUnavailable: 'metricsUnavailable', EarlyStopped: 'earlyStopped', Killed: 'killed',
};

/** A coloured state badge. */
export function badge(state) {
  return el('span', { class: `badge state-${String(state).replace(/[^A-Za-z]/g, '')}` }, state ?? '-');
}
