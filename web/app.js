// The router: hash routes to views, the token form, the breadcrumbs.
//
//   #/                     experiments
//   #/e/<name>             one experiment: summary, plots, trials table
//   #/e/<name>/trials      the same page, scrolled to the trials table
//   #/e/<name>/t/<trial>   one trial
//
// Each view is `mount(container, params, context)` → {dispose(), update?(params)}; dispose
// stops its timers and charts, so leaving a view leaves nothing polling behind.

import { api, getToken, handleUnauthorized, links, setToken, Unauthorized } from './api.js';
import { el, replace } from './util/dom.js';
import * as experimentsView from './views/experiments.js';
import * as experimentView from './views/experiment.js';
import * as trialView from './views/trial.js';

const main = document.getElementById('main');
const crumbs = document.getElementById('crumbs');
const live = document.getElementById('live');

let current = null; // {key, view}
let info = null;
let generation = 0; // bumps on every navigation, so a late answer cannot draw over a newer view

window.tuneflowTimings = window.tuneflowTimings || {};

function parse(hash) {
  const parts = hash.replace(/^#\/?/, '').split('/').map((p) => {
    try {
      return decodeURIComponent(p);
    } catch {
      return p;
    }
  });
  if (parts[0] === 'e' && parts[1]) {
    if (parts[2] === 't' && parts[3] !== undefined) return { view: 'trial', name: parts[1], trial: parts[3] };
    return { view: 'experiment', name: parts[1], tab: parts[2] === 'trials' ? 'trials' : 'plots' };
  }
  return { view: 'experiments' };
}

function breadcrumbs(route) {
  const items = [el('a', { href: links.experiments() }, 'Experiments')];
  if (route.name !== undefined) items.push(el('a', { href: links.experiment(route.name) }, route.name));
  if (route.view === 'experiment' && route.tab === 'trials') items.push(el('span', null, 'Trials'));
  if (route.view === 'trial') {
    items.push(el('a', { href: links.trials(route.name) }, 'Trials'));
    items.push(el('span', null, route.trial));
  }
  replace(crumbs, items.flatMap((item, i) => (i ? [el('span', { class: 'sep', 'aria-hidden': 'true' }, '›'), item] : [item])));
}

/** Marks the page as showing live data (the header's "live" dot). */
export function setLive(on) {
  live.hidden = !on;
}

function dispose() {
  if (current) {
    try {
      current.view.dispose();
    } catch (error) {
      console.error(error);
    }
  }
  current = null;
  setLive(false);
}

async function route() {
  const mine = ++generation;
  const target = parse(location.hash);
  const key = target.view === 'experiment' ? `e:${target.name}` : `${target.view}:${target.name}:${target.trial}`;
  breadcrumbs(target);
  // Switching between an experiment's plots and its trials keeps the loaded data.
  if (current && current.key === key && current.view.update) {
    current.view.update(target);
    return;
  }
  dispose();
  delete document.body.dataset.ready;
  window.tuneflowTimings.routeStart = performance.now();
  if (!info) {
    try {
      info = await api.info();
    } catch (error) {
      if (error instanceof Unauthorized) return; // the form is showing
      if (mine === generation) showError(error);
      return;
    }
    if (mine !== generation) return;
  }
  replace(main);
  const context = { info, setLive, isCurrent: () => mine === generation };
  const module = { experiments: experimentsView, experiment: experimentView, trial: trialView }[target.view];
  try {
    current = { key, view: module.mount(main, target, context) };
  } catch (error) {
    showError(error);
  }
}

function showError(error) {
  replace(main, el('div', { class: 'error-box' }, el('strong', null, 'Cannot load this page. '), error.message || String(error)));
}

/** The token form: shown when the server answers 401; the token goes to sessionStorage only. */
function showTokenForm() {
  // Several requests in flight may all answer 401: one form is enough.
  if (document.getElementById('token-form')) return;
  generation++;
  dispose();
  info = null;
  delete document.body.dataset.ready;
  const rejected = Boolean(getToken());
  setToken('');
  const input = el('input', { type: 'password', name: 'token', id: 'token', autocomplete: 'current-password', required: true, autofocus: true });
  const form = el(
    'form',
    { class: 'token-form card', id: 'token-form' },
    el('h2', null, 'Token required'),
    el('p', null, 'This server needs its access token (the --token of tuneflow serve). It is kept for this tab only.'),
    rejected ? el('p', { class: 'error-text', role: 'alert' }, 'That token was rejected.') : null,
    el('label', { for: 'token' }, 'Token'),
    input,
    el('button', { type: 'submit', class: 'primary' }, 'Open dashboard'),
  );
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    setToken(input.value.trim());
    replace(main, el('p', { class: 'muted' }, 'Checking the token…'));
    route();
  });
  replace(main, form);
  document.body.dataset.ready = 'token';
  input.focus();
}

handleUnauthorized(showTokenForm);
window.addEventListener('hashchange', route);
route();
