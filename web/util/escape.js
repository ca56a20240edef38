// Everything the store holds is user text: experiment, trial, parameter and metric names,
// categorical values, messages, log lines. The page inserts it with textContent; the only
// place HTML is built from strings is ECharts' tooltip, which goes through escapeHtml.

const ENTITIES = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** `value` as text that HTML shows literally (also safe inside a quoted attribute). */
export function escapeHtml(value) {
  return String(value ?? '').replace(/[&<>"']/g, (c) => ENTITIES[c]);
}
