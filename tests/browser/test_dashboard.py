"""The dashboard in a real Chromium against the real binary: every view opens and draws what
was seeded, brushing filters the table, live updates arrive, hostile strings stay text, the
token is enforced and the stop button works (and is disabled on `tuneflow dashboard`)."""

from __future__ import annotations

import math
import time
from urllib.parse import quote

import pytest

from conftest import RUNNING, STEPS, TRIALS, open_view, points, seed_main, wait_for
from tuneflow_server import HOSTILE, HOSTILE_METRIC, HOSTILE_PARAM, Api, Server, experiment_document

_seeded: dict = {}


def seeded(server, prefix: str, main_experiment=None):
    """The main seeded experiment on `server` (seeded once per server)."""
    if prefix == 'sq':
        return main_experiment
    if server.url not in _seeded:
        _seeded[server.url] = seed_main(server.api(), f'{prefix}-seeded')
    return _seeded[server.url]


def h(name: str) -> str:
    return quote(name, safe='')


def columns(api: Api, name: str) -> dict:
    return api.get(Api.e(name) + '/columns')


# --- experiments --------------------------------------------------------------------------

def test_experiments_view_lists_filters_and_orders(page, sqlite_server, main_experiment):
    api = sqlite_server.api()
    other = experiment_document('zz-newer', max_trials=5, parallel=2, hostile=False)
    api.post('/api/v1/experiments', other, expect=(201, 409))
    open_view(page, sqlite_server.url, '#/', 'experiments')
    listed = api.get('/api/v1/experiments')['experiments']
    names = page.eval_on_selector_all('#experiments tbody tr[data-name]', 'rows => rows.map(r => r.dataset.name)')
    # Newest first: the API lists oldest first.
    expected = [e['name'] for e in sorted(listed, key=lambda e: e['createdAt'], reverse=True)]
    assert names == expected
    row = page.locator('#experiments tbody tr[data-name="seeded"]')
    assert row.locator('.badge').inner_text() == 'Interrupted'
    # Trial counts by state as seeded.
    mini = {s: int(row.locator(f'.mini[data-state="{s}"]').inner_text()) for s in ['Succeeded', 'Failed', 'EarlyStopped', 'Killed', 'MetricsUnavailable']}
    assert mini == {s: main_experiment.count(s) for s in mini}
    page.fill('#filter-text', 'seed')
    wait_for(lambda: page.locator('#experiments tbody tr[data-name]').count() == 1, message='text filter')
    page.fill('#filter-text', '')
    page.select_option('#filter-state', 'Running')
    wait_for(lambda: 'seeded' not in page.eval_on_selector_all('#experiments tbody tr[data-name]', 'rows => rows.map(r => r.dataset.name)'),
             message='state filter')
    assert 'zz-newer' in page.eval_on_selector_all('#experiments tbody tr[data-name]', 'rows => rows.map(r => r.dataset.name)')
    # The list refreshes itself (every 2 s).
    page.select_option('#filter-state', '')
    api.post('/api/v1/experiments', experiment_document('zz-appears-later', max_trials=5, parallel=2, hostile=False), expect=(201, 409))
    wait_for(lambda: page.locator('#experiments tr[data-name="zz-appears-later"]').count() == 1, timeout=3.5, message='the new experiment')
    page.click('#experiments a >> nth=0')
    page.wait_for_selector('body[data-ready="experiment"]', state='attached')


# --- experiment page: plots ------------------------------------------------------------------

def test_plots_draw_every_seeded_point(page, backend, main_experiment):
    server, prefix = backend
    record = seeded(server, prefix, main_experiment if prefix == 'sq' else None)
    api = server.api()
    cols = columns(api, record.name)
    open_view(page, server.url, f'#/e/{h(record.name)}', 'experiment')

    valued = sum(v is not None for v in cols['trials']['objective'])
    # The Succeeded and EarlyStopped trials that reported the loss have a value; Failed,
    # Killed and MetricsUnavailable ones have none.
    with_loss = sum(1 for t, s in record.states.items() if s in ('Succeeded', 'EarlyStopped') and record.steps[t])
    assert valued == with_loss > 0
    importance = api.get(Api.e(record.name) + '/importance')
    assert len(importance['parameters']) == 3
    assert points(page) == {
        'history': valued,
        'curves': record.observations['loss'],
        'parallel': valued,
        'importance': 3,
        'slice': valued * 3,
        'contour': valued,
        'timeline': TRIALS,
    }
    assert page.locator('.exp-status .badge').inner_text() == 'Interrupted'
    counts = {c.get_attribute('data-state'): int(c.inner_text().split()[-1]) for c in page.locator('#counts .count').all()}
    assert counts == {s: record.count(s) for s in set(record.states.values())}
    assert page.locator('#trials table').get_attribute('data-total') == str(TRIALS)
    # The document as written, as text.
    page.click('details.doc-card summary')
    assert f'"name": "{record.name}"' in page.locator('#document').inner_text() or record.name in page.locator('#document').inner_text()

    # Another metric replaces the objective everywhere: values are each trial's last point.
    page.select_option('#metric-select', record.extra_metric)
    extra = len(record.extra_trials)
    wait_for(lambda: points(page)['curves'] == record.observations[record.extra_metric], message='curves of the extra metric')
    wait_for(lambda: points(page)['history'] == extra and points(page)['parallel'] == extra and points(page)['slice'] == 3 * extra,
             message='plots of the extra metric')


def test_log_scale_and_contour_pair(page, sqlite_server, main_experiment):
    open_view(page, sqlite_server.url, f'#/e/{h(main_experiment.name)}', 'experiment')
    before = points(page)
    page.check('#log-scale')  # losses are positive: every point stays
    wait_for(lambda: page.evaluate("() => echarts.getInstanceByDom(document.querySelector('[data-plot=history]')).getOption().yAxis[0].type") == 'log',
             message='log axis')
    assert points(page) == before
    page.select_option('#contour-x', 'optimizer')
    page.select_option('#contour-y', 'lr')
    axes = page.evaluate("""() => { const o = echarts.getInstanceByDom(document.querySelector('[data-plot=contour]')).getOption();
        return [o.xAxis[0].type, o.yAxis[0].type, o.xAxis[0].data] }""")
    assert axes == ['category', 'log', ['sgd', 'adam', HOSTILE]]
    assert points(page)['contour'] == before['contour']


def test_parallel_brush_filters_the_table(page, sqlite_server, main_experiment):
    api = sqlite_server.api()
    cols = columns(api, main_experiment.name)
    values = sorted(v for v in cols['trials']['objective'] if v is not None)
    median = values[len(values) // 2]
    low, high = values[0], median
    expected = sum(1 for v in values if low <= v <= high)
    open_view(page, sqlite_server.url, f'#/e/{h(main_experiment.name)}/trials', 'experiment')
    table = page.locator('#trials table')
    assert table.get_attribute('data-total') == str(TRIALS)
    page.evaluate("""([low, high]) => echarts.getInstanceByDom(document.querySelector('[data-plot=parallel]'))
        .dispatchAction({type: 'axisAreaSelect', parallelAxisId: 'value', intervals: [[low, high]]})""", [low, high])
    wait_for(lambda: table.get_attribute('data-total') == str(expected), message=f'{expected} trials after brushing')
    rows = page.eval_on_selector_all('#trials tbody tr[data-row]', 'rows => rows.length')
    assert rows == min(expected, int(table.get_attribute('data-rows')))
    # A second axis narrows it further: only 'sgd' on the categorical axis (index 0).
    optimizer = cols['trials']['parameters']['optimizer']
    both = sum(1 for v, o in zip(cols['trials']['objective'], optimizer) if v is not None and low <= v <= high and o == 'sgd')
    page.evaluate("""() => echarts.getInstanceByDom(document.querySelector('[data-plot=parallel]'))
        .dispatchAction({type: 'axisAreaSelect', parallelAxisId: 'p2', intervals: [[-0.4, 0.4]]})""")
    wait_for(lambda: table.get_attribute('data-total') == str(both), message=f'{both} trials after two brushes')
    page.click('text=clear brush')
    wait_for(lambda: table.get_attribute('data-total') == str(TRIALS), message='brush cleared')
    # With the mouse: drag along the value axis (the last one, at the right).
    plot = page.locator('[data-plot=parallel]')
    plot.scroll_into_view_if_needed()
    box = plot.bounding_box()
    x = box['x'] + box['width'] - 72
    page.mouse.move(x, box['y'] + box['height'] * 0.5)
    page.mouse.down()
    page.mouse.move(x, box['y'] + box['height'] * 0.7, steps=4)
    page.mouse.move(x, box['y'] + box['height'] * 0.85, steps=4)
    page.mouse.up()
    active = wait_for(lambda: page.evaluate("""() => { const s = echarts.getInstanceByDom(document.querySelector('[data-plot=parallel]'))
        .getModel().getSeriesByType('parallel')[0]; return s.getRawIndicesByActiveState('inactive').length
        ? s.getRawIndicesByActiveState('active').length : null }"""), message='a brush drawn with the mouse')
    assert 0 <= active < valued_count(cols)
    wait_for(lambda: table.get_attribute('data-total') == str(active), message=f'{active} trials after a mouse brush')


def valued_count(cols: dict) -> int:
    return sum(v is not None for v in cols['trials']['objective'])


def test_trials_table_sorts_filters_virtualises_and_opens(page, sqlite_server, main_experiment):
    api = sqlite_server.api()
    cols = columns(api, main_experiment.name)
    open_view(page, sqlite_server.url, f'#/e/{h(main_experiment.name)}/trials', 'experiment')
    table = page.locator('#trials table')
    # Only the rows in view exist.
    assert 0 < int(table.get_attribute('data-rows')) < TRIALS
    assert page.locator('#trials tbody tr[data-row]').count() == int(table.get_attribute('data-rows'))
    page.select_option('#trials .state-filter', 'Failed')
    wait_for(lambda: table.get_attribute('data-total') == str(main_experiment.count('Failed')), message='state filter')
    page.select_option('#trials .state-filter', '')
    # Sort by the objective: the best first, missing values last.
    page.click('#trials th[data-key="value"]')
    best = min(v for v in cols['trials']['objective'] if v is not None)
    first = page.locator('#trials tbody tr[data-row] >> nth=0')
    best_name = cols['trials']['name'][cols['trials']['objective'].index(best)]
    wait_for(lambda: first.locator('td >> nth=1').inner_text() == best_name, message='sorted by value')
    page.click('#trials th[data-key="value"]')  # descending
    worst = max(v for v in cols['trials']['objective'] if v is not None)
    wait_for(lambda: first.locator('td >> nth=1').inner_text() == cols['trials']['name'][cols['trials']['objective'].index(worst)],
             message='sorted descending')
    # Scrolling renders the rows further down.
    page.locator('#trials .table-scroll').evaluate('e => { e.scrollTop = e.scrollHeight; }')
    wait_for(lambda: page.locator('#trials tbody tr[data-row]').last.locator('td >> nth=1').inner_text() != '', message='scrolled rows')
    # Sorting by a parameter (a header with HTML in its name, as text).
    page.locator('#trials th', has_text=HOSTILE_PARAM).click()
    page.locator('#trials .table-scroll').evaluate('e => { e.scrollTop = 0; }')
    page.click('#trials th[data-key="index"]')
    page.locator('#trials tbody tr[data-row] >> nth=0').click()
    page.wait_for_selector('body[data-ready="trial"]', state='attached')
    assert page.locator('h1').inner_text() == main_experiment.order[0]


# --- trial page ------------------------------------------------------------------------------

def test_trial_page_shows_parameters_curves_events_message_and_no_log(page, sqlite_server, main_experiment):
    failed = next(t for t, s in main_experiment.states.items() if s == 'Failed')
    open_view(page, sqlite_server.url, f'#/e/{h(main_experiment.name)}/t/{h(failed)}', 'trial')
    assert page.locator('h1').inner_text() == failed
    assert page.locator('#trial-message').inner_text() == main_experiment.messages[failed]
    n = len(main_experiment.steps[failed])
    curves = page.evaluate("""() => Object.fromEntries([...document.querySelectorAll('[data-plot=metric]')]
        .map((e) => [e.dataset.metric, Number(e.dataset.points)]))""")
    assert curves == {'loss': n, HOSTILE_METRIC: math.ceil(n / 2)}
    states = page.eval_on_selector_all('#events tbody tr .badge', 'b => b.map(x => x.textContent)')
    assert states[-1] == 'Failed' and 'Running' in states
    assert page.locator('#log').inner_text() == 'no log'  # client-driven trials have none
    text = page.locator('main').inner_text()
    for name in main_experiment.parameters[failed]:
        assert name in text


# --- live updates ----------------------------------------------------------------------------

def test_live_updates_arrive_within_two_seconds(page, backend, fresh_name):
    server, prefix = backend
    api = server.api()
    name = fresh_name(prefix)
    api.post('/api/v1/experiments', experiment_document(name, max_trials=10, parallel=3, hostile=False), expect=(201,))
    trials = api.post(Api.e(name) + '/suggestions', {'count': 3})['trials']
    t0 = trials[0]['name']
    for step in range(2):
        api.post(Api.e(name) + f'/trials/{t0}/observations', {'step': step, 'metrics': {'loss': 1.0 - step / 10}})
    requests: list[str] = []
    page.on('request', lambda r: requests.append(r.url) if '/api/v1/' in r.url else None)
    open_view(page, server.url, f'#/e/{h(name)}', 'experiment')
    assert points(page)['curves'] == 2
    assert page.locator('#live').is_visible()
    loaded = len(requests)

    started = time.monotonic()
    api.post(Api.e(name) + f'/trials/{t0}/observations', {'step': 2, 'metrics': {'loss': 0.7}})
    wait_for(lambda: points(page)['curves'] == 3, timeout=2.0, message='the new observation on the curves')
    observed = time.monotonic() - started

    started = time.monotonic()
    api.post(Api.e(name) + f'/trials/{t0}/complete', {})
    wait_for(lambda: points(page)['history'] == 1, timeout=2.0, message='the completed trial in the history')
    completed = time.monotonic() - started
    assert page.locator('#counts .count[data-state="Succeeded"]').inner_text().split()[-1] == '1'
    # A new trial appears too.
    api.post(Api.e(name) + '/suggestions', {'count': 1})
    wait_for(lambda: points(page)['timeline'] == 4, timeout=2.0, message='the new trial on the timeline')

    # After loading, no tick downloaded every trial again: only changes and chosen curves.
    later = requests[loaded:]
    assert later, 'no poll happened'
    for url in later:
        if '/columns' in url:
            assert 'since=' in url, url
        if '/observations' in url:
            assert 'trials=' in url, url
    print(f'live: observation after {observed:.2f}s, completion after {completed:.2f}s')

    # Once the experiment is finished the page shows it, polls once more, and stops.
    api.post(Api.e(name) + '/stop', expect=(202,))
    wait_for(lambda: page.locator('.exp-status .badge').inner_text() == 'Interrupted', timeout=2.0, message='Interrupted')
    wait_for(lambda: not page.locator('#live').is_visible(), timeout=3.0, message='polling to stop')
    polls = sum('/columns' in url for url in requests)
    time.sleep(2.5)
    assert sum('/columns' in url for url in requests) == polls, 'the page kept polling a finished experiment'


# --- safety ----------------------------------------------------------------------------------

INJECTED = "() => document.querySelectorAll('img, b, script:not([src]), iframe').length"


def test_hostile_strings_stay_text(page, sqlite_server, main_experiment):
    # The experiments list, the experiment page with its tooltips, the trial page.
    open_view(page, sqlite_server.url, '#/', 'experiments')
    assert page.evaluate(INJECTED) == 0
    open_view(page, sqlite_server.url, f'#/e/{h(main_experiment.name)}', 'experiment')
    assert page.evaluate(INJECTED) == 0
    main = page.locator('main')
    assert HOSTILE in main.inner_text()  # the categorical value, in the table and best trial
    assert HOSTILE_PARAM in main.inner_text()
    assert HOSTILE_METRIC in page.locator('#metric-select').inner_text()
    # A tooltip of a trial whose optimizer is the hostile category.
    cols = columns(sqlite_server.api(), main_experiment.name)
    rows = [i for i, v in enumerate(cols['trials']['objective']) if v is not None]
    hostile_rows = [k for k, i in enumerate(rows) if cols['trials']['parameters']['optimizer'][i] == HOSTILE]
    assert hostile_rows, 'the seed gave no trial the hostile category'
    # ECharts shows tooltips as HTML: the page's formatter must escape every string.
    tip = page.evaluate("""(k) => { const c = echarts.getInstanceByDom(document.querySelector('[data-plot=parallel]'));
        return c.getOption().tooltip[0].formatter({dataIndex: k, seriesIndex: 0}); }""", hostile_rows[0])
    assert '<img' not in tip and '<b>' not in tip
    assert '&lt;img src=x onerror=alert(1)&gt;' in tip and 'p&lt;b&gt;q&lt;/b&gt;' in tip
    # Rendered as the tooltip renders it, it is text.
    text = page.evaluate("""(html) => { const t = document.createElement('template'); t.innerHTML = html;
        return [t.content.textContent, t.content.querySelectorAll('img, b').length]; }""", tip)
    assert HOSTILE in text[0] and text[1] == 0
    assert page.evaluate(INJECTED) == 0
    failed = next(t for t, s in main_experiment.states.items() if s == 'Failed')
    open_view(page, sqlite_server.url, f'#/e/{h(main_experiment.name)}/t/{h(failed)}', 'trial')
    assert HOSTILE in page.locator('#trial-message').inner_text()
    assert page.evaluate(INJECTED) == 0


def test_pages_carry_the_csp_and_no_cookie(sqlite_server):
    import urllib.request
    with urllib.request.urlopen(sqlite_server.url + '/') as response:
        csp = response.headers['Content-Security-Policy']
        assert "script-src 'self'" in csp and 'unsafe-eval' not in csp
        assert response.headers.get('Set-Cookie') is None


# --- token -----------------------------------------------------------------------------------

def test_token_is_required_and_kept_for_the_tab(page, binary, tmp_path):
    token = 'br0wser-t0ken'
    server = Server(binary, str(tmp_path / 'tuneflow.db'), token=token)
    try:
        server.api().post('/api/v1/experiments', experiment_document('tokened', max_trials=4, parallel=2, hostile=False), expect=(201,))
        statuses: list[tuple[str, int]] = []
        page.on('response', lambda r: statuses.append((r.url, r.status)) if '/api/v1/' in r.url else None)
        open_view(page, server.url, '#/', 'token')
        assert page.locator('#token-form').is_visible()
        assert statuses and all(s == 401 for _, s in statuses), statuses
        # A wrong token is rejected and the form comes back saying so.
        page.fill('#token', 'wrong')
        page.click('#token-form button')
        page.wait_for_selector('#token-form .error-text')
        assert all(s == 401 for _, s in statuses)
        page.fill('#token', token)
        page.click('#token-form button')
        page.wait_for_selector('body[data-ready="experiments"]', state='attached')
        assert page.locator('#experiments tr[data-name="tokened"]').count() == 1
        assert page.evaluate("() => sessionStorage.getItem('tuneflow.token')") == token
        assert page.evaluate('() => document.cookie') == ''
        assert statuses[-1][1] == 200
        # A new tab of the same session would need it again; this one keeps it across views.
        open_view(page, server.url, '#/e/tokened', 'experiment')
    finally:
        server.stop()


# --- stop ------------------------------------------------------------------------------------

def running_experiment(api: Api, name: str) -> list[dict]:
    api.post('/api/v1/experiments', experiment_document(name, max_trials=10, parallel=2, hostile=False), expect=(201,))
    return api.post(Api.e(name) + '/suggestions', {'count': 2})['trials']


def test_stop_button_stops_a_running_experiment(page, backend, fresh_name):
    server, prefix = backend
    api = server.api()
    name = fresh_name(prefix)
    running_experiment(api, name)
    open_view(page, server.url, f'#/e/{h(name)}', 'experiment')
    button = page.locator('#stop')
    assert button.is_enabled()
    button.click()
    page.click('#stop-confirm')
    wait_for(lambda: page.locator('.exp-status .badge').inner_text() == 'Interrupted', message='Interrupted')
    summary = api.get(Api.e(name))
    assert summary['state'] == 'Interrupted' and summary['reason'] == 'Stopped'
    assert summary['trials']['killed'] == 2
    assert page.locator('#stop').is_disabled()
    wait_for(lambda: points(page)['timeline'] == 2 and page.locator('#counts .count[data-state="Killed"]').count() == 1,
             message='killed trials shown')


def test_stop_is_disabled_on_a_read_only_dashboard(page, binary, sqlite_server, fresh_name, tmp_path):
    name = fresh_name('ro')
    running_experiment(sqlite_server.api(), name)
    store = sqlite_server.process.args[sqlite_server.process.args.index('--store') + 1]
    dashboard = Server(binary, store, mode='dashboard')
    try:
        assert dashboard.api().get('/api/v1/info')['readOnly'] is True
        open_view(page, dashboard.url, f'#/e/{h(name)}', 'experiment')
        assert page.locator('#stop').is_disabled()
        assert 'read-only' in page.locator('.stop-wrap').get_attribute('title')
        # And the route refuses it anyway.
        status = page.evaluate("""async (n) => (await fetch('/api/v1/experiments/' + encodeURIComponent(n) + '/stop', {method: 'POST'})).status""", name)
        assert status == 403
        assert sqlite_server.api().get(Api.e(name))['state'] == 'Running'
    finally:
        dashboard.stop()


# --- a trial's log -----------------------------------------------------------------------------

TRAIN = ("import sys\n"
         "x = float(sys.argv[1])\n"
         "for step in range(5):\n"
         "    print(f'loss={(x - 0.3) ** 2 + 1 / (step + 1):.6f}', flush=True)\n"
         "print('done <img src=x onerror=alert(1)>')\n")


def test_trial_page_shows_the_end_of_a_server_run_trials_log(page, binary, tmp_path):
    server = Server(binary, str(tmp_path / 'tuneflow.db'), cwd=str(tmp_path))
    try:
        api = server.api()
        document = {'apiVersion': 'tuneflow.dev/v1alpha1', 'kind': 'Experiment', 'metadata': {'name': 'logged'},
                    'spec': {'objective': {'type': 'minimize', 'objectiveMetricName': 'loss'},
                             'algorithm': {'algorithmName': 'random'}, 'maxTrialCount': 2, 'parallelTrialCount': 2,
                             'parameters': [{'name': 'x', 'parameterType': 'double', 'feasibleSpace': {'min': '0', 'max': '1'}}],
                             'trialTemplate': {'command': ['python3', '-c', TRAIN, '${parameters.x}'], 'timeout': '60s'}}}
        api.post('/api/v1/experiments', document, expect=(201,))
        wait_for(lambda: api.get(Api.e('logged'))['state'] in ('Succeeded', 'Failed'), timeout=60, interval=0.2, message='the run')
        trial = api.get(Api.e('logged') + '/trials')['trials'][0]
        assert trial['state'] == 'Succeeded', trial
        open_view(page, server.url, f'#/e/logged/t/{h(trial["name"])}', 'trial')
        log = page.locator('#log').inner_text().splitlines()
        assert log[-1] == 'done <img src=x onerror=alert(1)>'
        assert [line for line in log if line.startswith('loss=')] and len(log) == 6
        assert page.evaluate(INJECTED) == 0
        assert page.locator('[data-plot=metric][data-metric=loss]').get_attribute('data-points') == '5'
    finally:
        server.stop()


# --- the page's sources ------------------------------------------------------------------------

WEB = __import__('pathlib').Path(__file__).resolve().parents[2] / 'web'


def test_page_sources_have_no_html_sinks_and_preload_every_module():
    sinks = ['innerHTML', 'outerHTML', 'insertAdjacentHTML', 'document.write', 'eval(', 'new Function', 'setTimeout(\'', 'on' + 'click=']
    modules = sorted(p.relative_to(WEB).as_posix() for p in WEB.rglob('*.js') if 'vendor' not in p.parts)
    assert 'app.js' in modules
    for module in modules:
        text = (WEB / module).read_text()
        found = [s for s in sinks if s in text]
        assert not found, f'web/{module} uses {found}: insert user text with textContent / el()'
    index = (WEB / 'index.html').read_text()
    assert '<script>' not in index and 'onload=' not in index
    # Preloading every module saves a round trip per level of imports.
    for module in modules:
        assert f'href="/ui/{module}"' in index, f'index.html does not modulepreload /ui/{module}'


def test_an_experiment_without_trials_opens_and_fills_in_live(page, sqlite_server, fresh_name):
    api = sqlite_server.api()
    name = fresh_name('sq')
    api.post('/api/v1/experiments', experiment_document(name, max_trials=4, parallel=2, hostile=False), expect=(201,))
    open_view(page, sqlite_server.url, f'#/e/{h(name)}', 'experiment')
    assert points(page) == {'history': 0, 'curves': 0, 'parallel': 0, 'importance': 0, 'slice': 0, 'contour': 0, 'timeline': 0}
    assert page.locator('#trials table').get_attribute('data-total') == '0'
    trial = api.post(Api.e(name) + '/suggestions', {'count': 1})['trials'][0]['name']
    api.post(Api.e(name) + f'/trials/{trial}/observations', {'step': 0, 'metrics': {'loss': 0.5}})
    wait_for(lambda: points(page)['curves'] == 1 and points(page)['timeline'] == 1, timeout=3.0, message='the first trial')
    assert page.locator('#trials table').get_attribute('data-total') == '1'


def test_the_csp_blocks_inline_script_in_the_page(page, sqlite_server):
    # What a string slipped into the page as HTML could do: nothing. (eval cannot be tried
    # from here: DevTools evaluations are exempt from the CSP.)
    open_view(page, sqlite_server.url, '#/', 'experiments')
    injected = page.evaluate("""() => {
        const s = document.createElement('script'); s.textContent = 'window.injected = 1'; document.body.append(s);
        return window.injected; }""")
    page.wait_for_timeout(100)
    violations = page.evaluate('() => window.__csp.splice(0)')  # seen, and cleared for the fixture
    assert injected is None
    assert any('script-src' in v for v in violations), violations
    assert any('Content Security Policy' in e for e in page.watch.errors)
    page.watch.errors.clear()  # this test's own violation
