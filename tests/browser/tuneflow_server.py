"""Starting the real tuneflow binary and seeding it through the REST API, for the browser
tests and for screenshots.py. Standard library only."""

from __future__ import annotations

import http.client
import json
import math
import os
import random
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlsplit

HOSTILE = '<img src=x onerror=alert(1)>'
HOSTILE_METRIC = 'acc: top-1/val.x'  # metric names follow MLflow's rule (no '<'): the HTML goes elsewhere
HOSTILE_PARAM = 'p<b>q</b>'


class Server:
    """`tuneflow serve` or `tuneflow dashboard` on a free loopback port, for one store.

    The page's files are read from `web/` of this checkout (TUNEFLOW_DASHBOARD_DIR) unless
    TUNEFLOW_BROWSER_EMBEDDED=1, so the tests check the files being edited; CI sets nothing
    and the embedded copy is equally the checkout's (the binary was built from it).
    """

    def __init__(self, binary: str, store: str, *, mode: str = 'serve', token: str | None = None,
                 cwd: str | None = None, env: dict | None = None):
        self.mode = mode
        self.token = token
        args = [binary, mode, '--store', store, '--addr', '127.0.0.1:0']
        if token:
            args += ['--token', token]
        environment = dict(os.environ)
        environment.pop('TUNEFLOW_TOKEN', None)
        environment.pop('TUNEFLOW_STORE', None)
        web = Path(__file__).resolve().parents[2] / 'web'
        if os.environ.get('TUNEFLOW_BROWSER_EMBEDDED') != '1':
            environment['TUNEFLOW_DASHBOARD_DIR'] = str(web)
        environment.update(env or {})
        self.process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                        cwd=cwd, env=environment, start_new_session=True)
        self.stderr: list[str] = []
        threading.Thread(target=self._drain_stderr, daemon=True).start()
        line = self._first_line(timeout=60)
        # `tuneflow serving on http://HOST:PORT` / `tuneflow dashboard on http://HOST:PORT/`
        self.url = line.split(' on ', 1)[1].strip().rstrip('/')
        threading.Thread(target=self._drain_stdout, daemon=True).start()

    def _first_line(self, timeout: float) -> str:
        result: list[str] = []
        reader = threading.Thread(target=lambda: result.append(self.process.stdout.readline()), daemon=True)
        reader.start()
        reader.join(timeout)
        if not result or not result[0]:
            self.stop()
            raise RuntimeError(f'tuneflow {self.mode} did not start: {"".join(self.stderr)[-2000:]}')
        return result[0]

    def _drain_stdout(self) -> None:
        for _ in self.process.stdout:
            pass

    def _drain_stderr(self) -> None:
        for line in self.process.stderr:
            self.stderr.append(line)

    def api(self, token: str | None = ...) -> 'Api':
        return Api(self.url, self.token if token is ... else token)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


class ApiError(Exception):
    def __init__(self, status: int, body: str):
        super().__init__(f'HTTP {status}: {body[:500]}')
        self.status = status
        self.body = body


class Api:
    """A small keep-alive JSON client of the REST API (one connection per thread)."""

    def __init__(self, base: str, token: str | None = None):
        parts = urlsplit(base)
        self.host, self.port = parts.hostname, parts.port
        self.token = token
        self.local = threading.local()

    def _connection(self) -> http.client.HTTPConnection:
        if getattr(self.local, 'connection', None) is None:
            self.local.connection = http.client.HTTPConnection(self.host, self.port, timeout=60)
        return self.local.connection

    def request(self, method: str, path: str, body=None, expect=(200, 201, 202, 204)):
        headers = {'Accept': 'application/json'}
        if self.token:
            headers['Authorization'] = f'Bearer {self.token}'
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers['Content-Type'] = 'application/json'
        for attempt in range(2):
            connection = self._connection()
            try:
                connection.request(method, path, body=data, headers=headers)
                response = connection.getresponse()
                text = response.read().decode()
                break
            except (ConnectionError, http.client.HTTPException, socket.timeout):
                self.local.connection = None
                if attempt:
                    raise
        if response.status not in expect:
            raise ApiError(response.status, text)
        return json.loads(text) if text else None

    def get(self, path: str):
        return self.request('GET', path)

    def post(self, path: str, body=None, **kw):
        return self.request('POST', path, body if body is not None else {}, **kw)

    @staticmethod
    def e(name: str) -> str:
        return '/api/v1/experiments/' + quote(name, safe='')


def experiment_document(name: str, *, max_trials: int, parallel: int, hostile: bool = True,
                        early_stopping: bool = False, goal: float | None = None) -> dict:
    """A client-driven experiment over a log-scale double, an int and a categorical, with an
    additional metric; with hostile=True a category, a parameter name and the metric name
    carry HTML."""
    objective = {'type': 'minimize', 'objectiveMetricName': 'loss',
                 'additionalMetricNames': [HOSTILE_METRIC if hostile else 'acc']}
    if goal is not None:
        objective['goal'] = goal
    spec = {
        'objective': objective,
        'algorithm': {'algorithmName': 'random', 'algorithmSettings': [{'name': 'random_state', 'value': '7'}]},
        'maxTrialCount': max_trials,
        'parallelTrialCount': parallel,
        'parameters': [
            {'name': 'lr', 'parameterType': 'double',
             'feasibleSpace': {'min': '0.0001', 'max': '0.1', 'distribution': 'logUniform'}},
            {'name': HOSTILE_PARAM if hostile else 'layers', 'parameterType': 'int', 'feasibleSpace': {'min': '1', 'max': '5'}},
            {'name': 'optimizer', 'parameterType': 'categorical',
             'feasibleSpace': {'list': ['sgd', 'adam', HOSTILE] if hostile else ['sgd', 'adam', 'rmsprop']}},
        ],
    }
    if early_stopping:
        spec['earlyStopping'] = {'algorithmName': 'medianstop',
                                 'algorithmSettings': [{'name': 'min_trials_required', 'value': '5'}]}
    return {'apiVersion': 'tuneflow.dev/v1alpha1', 'kind': 'Experiment', 'metadata': {'name': name}, 'spec': spec}


def curve(parameters: dict, step: int, rng: random.Random) -> float:
    """A plausible loss: decays with the step towards a floor set by the parameters."""
    values = list(parameters.values())
    lr, layers, optimizer = values[0], values[1], values[2]
    floor = 0.1 + 0.08 * (math.log10(lr) + 2.5) ** 2 + 0.03 * abs(layers - 3) + (0.1 if optimizer == 'sgd' else 0.0)
    return floor + 1.2 * math.exp(-step / 3.0) + rng.uniform(0, 0.01)


@dataclass
class Seeded:
    """What was seeded, to compare the page with."""
    name: str
    metric: str
    extra_metric: str
    states: dict = field(default_factory=dict)        # trial name -> state
    observations: dict = field(default_factory=dict)  # metric -> count of points posted
    steps: dict = field(default_factory=dict)         # trial name -> list of loss steps
    messages: dict = field(default_factory=dict)      # trial name -> message posted
    parameters: dict = field(default_factory=dict)    # trial name -> parameters
    extra_trials: set = field(default_factory=set)    # trials with an extra-metric point
    order: list = field(default_factory=list)         # trial names by index

    def count(self, state: str) -> int:
        return sum(1 for s in self.states.values() if s == state)


def seed(api: Api, name: str, *, trials: int, steps: int, plan=None, hostile: bool = True,
         running: int = 0, seed_value: int = 1, threads: int = 4) -> Seeded:
    """Creates `name` and plays `trials` trials through suggestions, observations and
    completions; the last `running` stay Running.

    plan(i) → (final state, number of loss steps): 'succeeded', 'failed', 'pruned',
    'unavailable' (no loss at all: MetricsUnavailable) or 'running'.
    """
    api.post('/api/v1/experiments', experiment_document(name, max_trials=trials, parallel=trials, hostile=hostile),
             expect=(201,))
    extra = HOSTILE_METRIC if hostile else 'acc'
    suggested = api.post(Api.e(name) + '/suggestions', {'count': trials})['trials']
    assert len(suggested) == trials, suggested
    record = Seeded(name=name, metric='loss', extra_metric=extra)
    record.observations = {'loss': 0, extra: 0}
    lock = threading.Lock()

    def play(i: int, trial: dict) -> None:
        rng = random.Random(seed_value * 100003 + i)
        state, n = plan(i) if plan else ('succeeded', steps)
        if i >= trials - running:
            state, n = 'running', min(n, max(1, steps // 2))
        tname = trial['name']
        posted_loss, posted_extra = [], 0
        for s in range(n):
            metrics = {}
            if state != 'unavailable':
                metrics['loss'] = curve(trial['parameters'], s, rng)
            if s % 2 == 0:  # the extra metric every other step: a different point count
                metrics[extra] = 1.0 - curve(trial['parameters'], s, rng) / 2
            if not metrics:
                continue
            api.post(Api.e(name) + f'/trials/{quote(tname, safe="")}/observations', {'step': s, 'metrics': metrics})
            if 'loss' in metrics:
                posted_loss.append(s)
            if extra in metrics:
                posted_extra += 1
        message = None
        if state == 'succeeded' or state == 'unavailable':
            final = api.post(Api.e(name) + f'/trials/{quote(tname, safe="")}/complete', {})
        elif state == 'failed':
            message = f'loss diverged: {HOSTILE}'
            final = api.post(Api.e(name) + f'/trials/{quote(tname, safe="")}/complete', {'state': 'failed', 'message': message})
        elif state == 'pruned':
            final = api.post(Api.e(name) + f'/trials/{quote(tname, safe="")}/complete', {'state': 'pruned'})
        else:
            final = {'state': 'Running'}
        with lock:
            record.states[tname] = final['state']
            record.steps[tname] = posted_loss
            record.observations['loss'] += len(posted_loss)
            record.observations[extra] += posted_extra
            if posted_extra:
                record.extra_trials.add(tname)
            record.parameters[tname] = trial['parameters']
            if message:
                record.messages[tname] = message

    errors: list[BaseException] = []

    def worker(items):
        try:
            for i, t in items:
                play(i, t)
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    items = list(enumerate(suggested))
    pool = [threading.Thread(target=worker, args=(items[k::threads],)) for k in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    if errors:
        raise errors[0]
    record.order = [t['name'] for t in suggested]
    return record


def standard_plan(trials: int, steps: int):
    """The tests' mix: mostly Succeeded, some Failed, EarlyStopped (pruned) and
    MetricsUnavailable; Killed ones come from stopping the experiment with trials running."""
    def plan(i: int):
        if i % 10 == 3:
            return 'failed', 3
        if i % 10 == 6:
            return 'pruned', 4
        if i % 20 == 9:
            return 'unavailable', 2
        return 'succeeded', steps
    return plan
