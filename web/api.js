// The data routes of docs/dashboard.md. Every request carries the bearer token from
// sessionStorage (never a cookie, so no other site can make the browser send it). A 401
// anywhere calls the handler app.js registers, which shows the token form.

const TOKEN_KEY = 'tuneflow.token';

export class Unauthorized extends Error {
  constructor() {
    super('unauthorized');
    this.name = 'Unauthorized';
  }
}

export class HttpError extends Error {
  constructor(status, code, message) {
    super(message || `HTTP ${status}`);
    this.name = 'HttpError';
    this.status = status;
    this.code = code;
  }
}

let onUnauthorized = () => {};

/** Registers what to do when the server answers 401. */
export function handleUnauthorized(fn) {
  onUnauthorized = fn;
}

export function getToken() {
  return sessionStorage.getItem(TOKEN_KEY) || '';
}

export function setToken(token) {
  if (token) sessionStorage.setItem(TOKEN_KEY, token);
  else sessionStorage.removeItem(TOKEN_KEY);
}

/** Requests `/api/v1${path}` and returns its JSON; throws Unauthorized or HttpError. */
export async function request(path, { method = 'GET', body, signal } = {}) {
  const headers = { Accept: 'application/json' };
  const token = getToken();
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const response = await fetch(`/api/v1${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    signal,
    credentials: 'omit',
    cache: 'no-store',
  });
  if (response.status === 401) {
    onUnauthorized();
    throw new Unauthorized();
  }
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  if (!response.ok) {
    throw new HttpError(response.status, data?.error?.code, data?.error?.message || response.statusText);
  }
  return data;
}

// Names may hold any character: each path segment is encoded on its own.
const seg = encodeURIComponent;
const exp = (name) => `/experiments/${seg(name)}`;

export const api = {
  info: () => request('/info'),
  experiments: () => request('/experiments'),
  experiment: (name) => request(exp(name)),
  columns: (name, since) => request(`${exp(name)}/columns${since ? `?since=${seg(since)}` : ''}`),
  // Without a metric, /observations and /importance answer for the objective.
  observations: (name, metric, trials) => {
    const query = [metric ? `metric=${seg(metric)}` : '', trials ? `trials=${trials.join(',')}` : ''].filter(Boolean).join('&');
    return request(`${exp(name)}/observations${query ? `?${query}` : ''}`);
  },
  importance: (name, metric) => request(`${exp(name)}/importance${metric ? `?metric=${seg(metric)}` : ''}`),
  document: (name) => request(`${exp(name)}/document`),
  stop: (name) => request(`${exp(name)}/stop`, { method: 'POST' }),
  trial: (name, trial) => request(`${exp(name)}/trials/${seg(trial)}`),
  events: (name, trial) => request(`${exp(name)}/trials/${seg(trial)}/events`),
  log: (name, trial, lines = 200) => request(`${exp(name)}/trials/${seg(trial)}/log?lines=${lines}`),
};

/** Hash links to the page's views. */
export const links = {
  experiments: () => '#/',
  experiment: (name) => `#/e/${seg(name)}`,
  trials: (name) => `#/e/${seg(name)}/trials`,
  trial: (name, trial) => `#/e/${seg(name)}/t/${seg(trial)}`,
};
