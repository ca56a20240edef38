#!/usr/bin/env python3
"""Seeds a store with a few realistic experiments through the REST API and saves screenshots
(1400×900) of each view of the dashboard to docs/dashboard/{experiments,experiment,trials,trial}.png.

  TUNEFLOW_BIN=target/debug/tuneflow tests/browser/.venv/bin/python tests/browser/screenshots.py [--out DIR]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).parent))
from conftest import ARGS, CHROMIUM  # noqa: E402
from playwright.sync_api import sync_playwright  # noqa: E402
from tuneflow_server import Api, Server, experiment_document, seed  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def plan_for(trials: int, steps: int):
    def plan(i: int):
        if i % 17 == 5:
            return 'failed', 2 + i % 5
        if i % 7 == 2:
            return 'pruned', 3 + i % 9
        if i % 41 == 11:
            return 'unavailable', 2
        return 'succeeded', steps
    return plan


# A training script the server runs itself for `cifar-resnet`: its output is the trial's log.
TRAIN = """import math, random, sys, time
lr, width = float(sys.argv[1]), int(sys.argv[2])
rng = random.Random(width * 1000 + int(lr * 1e6))
print(f'training resnet with lr {lr:.5f}, width {width}', flush=True)
for epoch in range(12):
    loss = 0.25 + 0.6 * abs(math.log10(lr) + 2) / 2 + 0.02 * abs(width - 64) / 32 + 1.5 * math.exp(-epoch / 3) + rng.uniform(0, 0.02)
    print(f'epoch={epoch} loss={loss:.5f} acc={max(0.0, 1 - loss / 2.2):.4f}', flush=True)
    time.sleep(0.02)
print('saved checkpoint to /tmp/ckpt.pt', flush=True)
"""


def server_run(name: str) -> dict:
    return {'apiVersion': 'tuneflow.dev/v1alpha1', 'kind': 'Experiment', 'metadata': {'name': name},
            'spec': {'objective': {'type': 'minimize', 'objectiveMetricName': 'loss', 'additionalMetricNames': ['acc']},
                     'algorithm': {'algorithmName': 'random', 'algorithmSettings': [{'name': 'random_state', 'value': '3'}]},
                     'maxTrialCount': 16, 'parallelTrialCount': 4,
                     'parameters': [
                         {'name': 'lr', 'parameterType': 'double', 'feasibleSpace': {'min': '0.0005', 'max': '0.5', 'distribution': 'logUniform'}},
                         {'name': 'width', 'parameterType': 'discrete', 'feasibleSpace': {'list': ['16', '32', '64', '128']}}],
                     'trialTemplate': {'command': ['python3', '-c', TRAIN, '${parameters.lr}', '${parameters.width}'], 'timeout': '60s'}}}


def wait_ready(page, ready: str) -> None:
    page.wait_for_selector(f'body[data-ready="{ready}"]', state='attached', timeout=60000)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument('--out', default=str(ROOT / 'docs' / 'dashboard'))
    parser.add_argument('--tuneflow', default=os.environ.get('TUNEFLOW_BIN'))
    args = parser.parse_args()
    if not args.tuneflow:
        sys.exit('set TUNEFLOW_BIN or pass --tuneflow')
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        server = Server(args.tuneflow, str(Path(tmp) / 'tuneflow.db'), cwd=tmp)
        try:
            api = server.api()
            # An interrupted one (stopped with trials running), a finished sweep, one still running.
            seed(api, 'bert-finetune', trials=40, steps=10, plan=plan_for(40, 10), hostile=False, running=3, seed_value=3)
            api.post(Api.e('bert-finetune') + '/stop', expect=(202,))
            main = seed(api, 'mnist-lr-sweep', trials=300, steps=20, plan=plan_for(300, 20), hostile=False, seed_value=1)
            seed(api, 'resnet-search', trials=60, steps=20, plan=plan_for(60, 20), hostile=False, running=4, seed_value=2)
            api.post('/api/v1/experiments', server_run('cifar-resnet'), expect=(201,))
            deadline = time.monotonic() + 120
            while api.get(Api.e('cifar-resnet'))['state'] not in ('Succeeded', 'Failed') and time.monotonic() < deadline:
                time.sleep(0.5)
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
                page = browser.new_page(viewport={'width': 1400, 'height': 900})
                page.goto(f'{server.url}/#/')
                wait_ready(page, 'experiments')
                page.screenshot(path=str(out / 'experiments.png'))

                page.goto(f'{server.url}/#/e/mnist-lr-sweep')
                wait_ready(page, 'experiment')
                page.screenshot(path=str(out / 'experiment.png'))

                # The trials under a brush drawn with the mouse along the objective axis (the
                # last axis, 72 px from the right; it spans 40 px from the top to 28 px from
                # the bottom of the plot): its lowest fifth.
                page.goto(f'{server.url}/#/e/mnist-lr-sweep/trials')
                page.reload()
                wait_ready(page, 'experiment')
                plot = page.locator('[data-plot=parallel]')
                plot.scroll_into_view_if_needed()
                box = plot.bounding_box()
                x = box['x'] + box['width'] - 72
                bottom = box['y'] + box['height'] - 26
                page.mouse.move(x, bottom)
                page.mouse.down()
                page.mouse.move(x, bottom - (box['height'] - 68) * 0.1, steps=4)
                page.mouse.move(x, bottom - (box['height'] - 68) * 0.2, steps=4)
                page.mouse.up()
                page.mouse.move(box['x'] + 10, box['y'] - 40)
                page.evaluate("() => echarts.getInstanceByDom(document.querySelector('[data-plot=parallel]')).dispatchAction({type: 'hideTip'})")
                page.wait_for_timeout(300)
                page.evaluate("""() => { const card = document.querySelector('[data-plot=parallel]').closest('section');
                    window.scrollTo(0, card.getBoundingClientRect().top + window.scrollY - 64); }""")
                page.screenshot(path=str(out / 'trials.png'))

                best = api.get(Api.e('cifar-resnet'))['best']['trial']
                page.goto(f'{server.url}/#/e/cifar-resnet/t/{quote(best)}')
                wait_ready(page, 'trial')
                page.screenshot(path=str(out / 'trial.png'))
                browser.close()
            print(f'screenshots of {len(main.states)} trials written to {out}')
        finally:
            server.stop()


if __name__ == '__main__':
    main()
