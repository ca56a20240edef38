"""Fixtures: the tuneflow binary (TUNEFLOW_BIN), servers on fresh stores seeded through the
REST API, and Chromium pages that fail the test on a script error, a CSP violation or a
dialog."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from playwright.sync_api import Page, sync_playwright

from tuneflow_server import Api, Seeded, Server, seed, standard_plan

CHROMIUM = os.environ.get('TUNEFLOW_CHROMIUM', '/usr/bin/chromium')
ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
        '--disable-component-update', '--disable-sync']
TRIALS, STEPS, RUNNING = 60, 8, 4


@pytest.fixture(scope='session')
def binary() -> str:
    path = os.environ.get('TUNEFLOW_BIN')
    if not path:
        pytest.fail('set TUNEFLOW_BIN to the tuneflow binary (e.g. target/debug/tuneflow)')
    if not (Path(path).is_file() and os.access(path, os.X_OK)):
        pytest.fail(f'TUNEFLOW_BIN={path}: no such executable file')
    return str(Path(path).resolve())


@pytest.fixture(scope='session')
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f'{CHROMIUM} is missing: apt-get install chromium')
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


class Watch:
    """What went wrong in a page: uncaught errors, CSP violations, dialogs."""

    def __init__(self, page: Page):
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        page.on('pageerror', lambda e: self.errors.append(f'pageerror: {e}'))
        page.on('console', self._console)
        page.on('dialog', self._dialog)

    def _console(self, message) -> None:
        text = message.text
        # 401 and 404 answers are expected in some tests; the browser logs each one.
        if 'Failed to load resource' in text:
            return
        if message.type == 'error' or 'Content Security Policy' in text or 'Content-Security-Policy' in text:
            self.errors.append(f'console {message.type}: {text}')

    def _dialog(self, dialog) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={'width': 1400, 'height': 900})
    # Every CSP violation of every document the page opens, whatever the console says.
    context.add_init_script("""window.__csp = []; document.addEventListener('securitypolicyviolation',
        (e) => window.__csp.push(`${e.violatedDirective}: ${e.blockedURI} ${e.sourceFile}:${e.lineNumber}`));""")
    p = context.new_page()
    p.set_default_timeout(20000)
    watch = Watch(p)
    p.watch = watch
    yield p
    try:
        violations = p.evaluate('() => window.__csp || []')
    except Exception:  # noqa: BLE001 - a page that navigated away or closed has nothing to say
        violations = []
    context.close()
    assert not violations, f'CSP violations: {violations}'
    assert not watch.dialogs, f'a dialog opened: {watch.dialogs}'
    assert not watch.errors, '\n'.join(watch.errors)


def open_view(page: Page, base: str, route: str, ready: str, timeout: float = 30000) -> None:
    """Opens `base/#route` in a fresh document and waits until the view says it is drawn."""
    page.goto('about:blank')
    page.goto(f'{base}/{route}')
    page.wait_for_selector(f'body[data-ready="{ready}"]', state='attached', timeout=timeout)


def points(page: Page) -> dict:
    """Each plot's data-points, by data-plot."""
    return page.evaluate("""() => Object.fromEntries([...document.querySelectorAll('[data-plot]')]
        .map((e) => [e.dataset.plot, e.dataset.points === undefined ? null : Number(e.dataset.points)]))""")


def wait_for(predicate, timeout: float = 10.0, interval: float = 0.05, message: str = 'condition'):
    """Polls `predicate` (from Python: the page's CSP forbids Playwright's string predicates)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f'timed out after {timeout}s waiting for {message} (last: {last!r})')


def seed_main(api: Api, name: str) -> Seeded:
    """60 trials × 8 steps: Succeeded, Failed, EarlyStopped, MetricsUnavailable, and 4 left
    running then Killed by stopping the experiment (which ends Interrupted)."""
    record = seed(api, name, trials=TRIALS, steps=STEPS, plan=standard_plan(TRIALS, STEPS), running=RUNNING)
    api.post(Api.e(name) + '/stop', expect=(202,))
    for trial, state in record.states.items():
        if state == 'Running':
            record.states[trial] = 'Killed'
    return record


@pytest.fixture(scope='session')
def sqlite_server(binary, tmp_path_factory):
    store = tmp_path_factory.mktemp('store') / 'tuneflow.db'
    server = Server(binary, str(store))
    yield server
    server.stop()


@pytest.fixture(scope='session')
def main_experiment(sqlite_server) -> Seeded:
    return seed_main(sqlite_server.api(), 'seeded')


def _postgres_url() -> str | None:
    return os.environ.get('TUNEFLOW_TEST_POSTGRES') or None


@pytest.fixture(scope='session')
def postgres_server(binary, prefix):
    """`tuneflow serve` on PostgreSQL: in a schema of its own when psql can create one
    (dropped afterwards), else in the database's default schema, where the experiment names'
    prefix keeps this run apart from earlier ones."""
    url = _postgres_url()
    if not url:
        pytest.skip('TUNEFLOW_TEST_POSTGRES is not set')
    schema = None
    store = url
    if shutil.which('psql'):
        schema = 'browser_' + prefix.replace('-', '_')
        created = subprocess.run(['psql', url, '-v', 'ON_ERROR_STOP=1', '-qc', f'CREATE SCHEMA "{schema}"'],
                                 capture_output=True, text=True)
        if created.returncode == 0:
            store = f"{url}{'&' if '?' in url else '?'}options=-c%20search_path%3D{schema}"
        else:
            schema = None
    server = Server(binary, store)
    yield server
    server.stop()
    if schema:
        subprocess.run(['psql', url, '-qc', f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'], capture_output=True)


@pytest.fixture(scope='session')
def prefix() -> str:
    # A shared PostgreSQL database may hold earlier runs' experiments: names of our own.
    return f'b{os.getpid() % 100000}-{int(time.time()) % 1000000}'


@pytest.fixture(params=['sqlite', 'postgres'])
def backend(request, prefix):
    """(server, name prefix) on SQLite, and on PostgreSQL when TUNEFLOW_TEST_POSTGRES is set."""
    if request.param == 'sqlite':
        return request.getfixturevalue('sqlite_server'), 'sq'
    return request.getfixturevalue('postgres_server'), prefix


_names: dict = {}


@pytest.fixture
def fresh_name(request):
    """A new experiment name per call, valid for tuneflow (lower-case, ≤ 40 characters)."""
    def make(prefix: str = 't') -> str:
        base = re.sub(r'[^a-z0-9]+', '-', request.node.name.lower().removeprefix('test_')).strip('-')[:20].strip('-')
        n = _names[base] = _names.get(base, 0) + 1
        return f'{prefix}-{base}-{n}'[:40].strip('-')
    return make
