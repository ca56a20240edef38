// The trials table: sortable by any column, filtered by state and by the parallel
// coordinates' brush, and virtualised: only the rows in view exist in the DOM (plus a few
// above and below), so 100,000 trials scroll as smoothly as 100. Rows have a fixed height
// for that; long cells are cut with an ellipsis and shown whole in their title.

import { el, replace } from './util/dom.js';
import { badge, duration, num, TRIAL_STATES, value as fmtValue } from './util/format.js';

const ROW_HEIGHT = 28; // keep in sync with .trials td height in style.css
const OVERSCAN = 8;
// One collator for every sort: far faster than String.localeCompare on 100,000 rows.
const COLLATOR = new Intl.Collator(undefined, { numeric: true });

export class TrialsTable {
  /**
   * @param container  element the table goes in
   * @param onOpen     called with a row when a trial is opened (click or Enter)
   */
  constructor(container, onOpen) {
    this.onOpen = onOpen;
    this.model = null;
    this.values = [];
    this.metric = '';
    this.sort = { key: 'index', desc: false };
    this.stateFilter = '';
    this.brush = null; // Set of rows, or null
    this.order = []; // filtered, sorted rows
    this.rendered = null;

    this.stateSelect = el('select', { 'aria-label': 'Filter trials by state', class: 'state-filter' },
      el('option', { value: '' }, 'All states'), TRIAL_STATES.map((s) => el('option', { value: s }, s)));
    this.stateSelect.addEventListener('change', () => {
      this.stateFilter = this.stateSelect.value;
      this.refresh();
    });
    this.info = el('span', { class: 'muted table-info' });
    this.brushNote = el('span', { class: 'brush-note', hidden: true });
    this.clearBrush = el('button', { type: 'button', class: 'link-button', hidden: true }, 'clear brush');
    this.onClearBrush = () => {};
    this.clearBrush.addEventListener('click', () => this.onClearBrush());

    this.thead = el('thead');
    this.tbody = el('tbody');
    this.table = el('table', { class: 'trials', dataset: { rows: '0', total: '0' } }, this.thead, this.tbody);
    this.scroller = el('div', { class: 'table-scroll', tabindex: '-1' }, this.table);
    this.scroller.addEventListener('scroll', () => this.schedule());
    this.resize = new ResizeObserver(() => this.schedule());
    this.resize.observe(this.scroller);
    this.thead.addEventListener('click', (event) => {
      const th = event.target.closest('th');
      if (!th) return;
      const key = th.dataset.key;
      this.sort = { key, desc: this.sort.key === key ? !this.sort.desc : false };
      this.refresh();
    });
    this.tbody.addEventListener('click', (event) => {
      const tr = event.target.closest('tr[data-row]');
      if (tr) this.onOpen(Number(tr.dataset.row));
    });
    this.tbody.addEventListener('keydown', (event) => {
      const tr = event.target.closest('tr[data-row]');
      if (tr && event.key === 'Enter') this.onOpen(Number(tr.dataset.row));
    });
    container.append(
      el('div', { class: 'table-tools' }, this.stateSelect, this.brushNote, this.clearBrush, this.info),
      this.scroller,
    );
  }

  /** Sets the data: the model, and each row's value of the chosen metric. */
  setData(model, metric, values) {
    this.model = model;
    this.metric = metric;
    this.values = values;
    this.columns = [
      { key: 'index', label: '#', get: (r) => model.index[r], text: (r) => String(model.index[r]), cls: 'num' },
      { key: 'name', label: 'trial', get: (r) => model.name[r], text: (r) => model.name[r] },
      { key: 'state', label: 'state', get: (r) => model.state[r], cell: (r) => badge(model.state[r]) },
      { key: 'value', label: metric, get: (r) => values[r], text: (r) => num(values[r]), cls: 'num' },
      ...model.parameters.map((p) => ({
        key: `p:${p.name}`, label: p.name, get: (r) => model.params[p.name][r], text: (r) => fmtValue(model.params[p.name][r]),
        cls: p.type === 'categorical' ? '' : 'num',
      })),
      { key: 'duration', label: 'duration', get: (r) => model.duration(r), text: (r) => duration(model.duration(r)), cls: 'num' },
      { key: 'message', label: 'message', get: (r) => model.message[r], text: (r) => model.message[r] ?? '', cls: 'message' },
    ];
    if (!this.columns.some((c) => c.key === this.sort.key)) this.sort = { key: 'index', desc: false };
    this.refresh();
  }

  /** Filters by a set of rows (the brush), or clears that filter with null. */
  setBrush(rows) {
    this.brush = rows;
    this.refresh();
  }

  refresh() {
    const m = this.model;
    if (!m) return;
    const order = [];
    for (let r = 0; r < m.rows; r++) {
      if (this.stateFilter && m.state[r] !== this.stateFilter) continue;
      if (this.brush && !this.brush.has(r)) continue;
      order.push(r);
    }
    const col = this.columns.find((c) => c.key === this.sort.key);
    const sign = this.sort.desc ? -1 : 1;
    const keys = new Array(m.rows);
    for (const r of order) keys[r] = col.get(r);
    // Missing values go last whichever way the column is sorted; numbers before text.
    order.sort((a, b) => {
      const x = keys[a];
      const y = keys[b];
      const xm = x === null || x === undefined;
      const ym = y === null || y === undefined;
      if (xm || ym) return xm && ym ? a - b : xm ? 1 : -1;
      if (typeof x === 'number' && typeof y === 'number') return (x - y) * sign || a - b;
      return COLLATOR.compare(String(x), String(y)) * sign || a - b;
    });
    this.order = order;
    this.table.dataset.total = String(order.length);
    this.brushNote.hidden = !this.brush;
    this.clearBrush.hidden = !this.brush;
    this.brushNote.textContent = this.brush ? `parallel-coordinates brush: ${this.brush.size} trials` : '';
    this.info.textContent = `${order.length.toLocaleString()} of ${m.rows.toLocaleString()} trials`;
    this.header();
    this.rendered = null;
    this.render();
  }

  header() {
    replace(this.thead, el('tr', null, this.columns.map((c) => {
      const sorted = c.key === this.sort.key;
      return el('th', {
        dataset: { key: c.key }, class: c.cls, title: `Sort by ${c.label}`, scope: 'col',
        'aria-sort': sorted ? (this.sort.desc ? 'descending' : 'ascending') : 'none',
      }, c.label, sorted ? el('span', { class: 'arrow' }, this.sort.desc ? ' ▼' : ' ▲') : null);
    })));
  }

  schedule() {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.render();
    });
  }

  render() {
    if (!this.model) return;
    const total = this.order.length;
    const view = this.scroller.clientHeight || 480;
    const first = Math.max(0, Math.floor(this.scroller.scrollTop / ROW_HEIGHT) - OVERSCAN);
    const last = Math.min(total, Math.ceil((this.scroller.scrollTop + view) / ROW_HEIGHT) + OVERSCAN);
    const key = `${first}:${last}`;
    if (this.rendered === key) return;
    this.rendered = key;
    const span = this.columns.length;
    const rows = [];
    if (first > 0) rows.push(el('tr', { class: 'spacer', 'aria-hidden': 'true' }, el('td', { colspan: span, style: { height: `${first * ROW_HEIGHT}px` } })));
    for (let i = first; i < last; i++) {
      const r = this.order[i];
      rows.push(el('tr', { dataset: { row: r }, tabindex: '0' }, this.columns.map((c) => {
        if (c.cell) return el('td', { class: c.cls }, c.cell(r));
        const text = c.text(r);
        return el('td', { class: c.cls, title: text.length > 24 ? text : undefined }, text);
      })));
    }
    if (last < total) rows.push(el('tr', { class: 'spacer', 'aria-hidden': 'true' }, el('td', { colspan: span, style: { height: `${(total - last) * ROW_HEIGHT}px` } })));
    if (!total) rows.push(el('tr', { class: 'empty' }, el('td', { colspan: span }, 'No trials match.')));
    replace(this.tbody, rows);
    this.table.dataset.rows = String(last - first);
  }

  /** Re-renders the visible rows after the model changed in place (a live update). */
  update(values) {
    if (values) this.values = values;
    this.refresh();
  }

  dispose() {
    this.resize.disconnect();
    if (this.frame) cancelAnimationFrame(this.frame);
  }
}
