#!/usr/bin/env python3
"""Time to ready of the dashboard's experiment page over a store: opens the page RUNS times
in fresh tabs of headless Chromium and prints, per run, the milliseconds from the route's
start to `body[data-ready=experiment]` (every plot drawn), split into loading the data and
drawing, and each plot's synchronous draw time; then, in the same tab, goes to the list and
back and measures that route's wall time and the renderer main thread's CPU time (which the
machine's other load does not inflate).

  tests/browser/.venv/bin/python tests/browser/measure.py --tuneflow BIN --store DB [--runs 5]
  tests/browser/.venv/bin/python tests/browser/measure.py --url http://127.0.0.1:8471 [--experiment NAME]

(`--store` starts a read-only `tuneflow dashboard` over that store; `--url` uses a server that
is running already.)
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).parent))
from conftest import ARGS, CHROMIUM  # noqa: E402
from playwright.sync_api import sync_playwright  # noqa: E402
from tuneflow_server import Api, Server  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument('--tuneflow')
    parser.add_argument('--store')
    parser.add_argument('--url')
    parser.add_argument('--experiment')
    parser.add_argument('--runs', type=int, default=5)
    args = parser.parse_args()
    if args.url:
        server = None
        url = args.url.rstrip('/')
        api = Api(url)
    else:
        if not (args.tuneflow and args.store):
            parser.error('give --url, or --tuneflow and --store')
        server = Server(args.tuneflow, args.store, mode='dashboard')
        url = server.url
        api = server.api()
    try:
        name = args.experiment or api.get('/api/v1/experiments')['experiments'][0]['name']
        rows = []
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            for run in range(args.runs):
                context = browser.new_context(viewport={'width': 1400, 'height': 900})
                page = context.new_page()
                # Cold: a fresh tab straight onto the experiment (ECharts parsed, data fetched).
                page.goto(f'{url}/#/e/{quote(name, safe="")}')
                page.wait_for_selector('body[data-ready="experiment"]', state='attached', timeout=120000)
                timings = page.evaluate('() => window.tuneflowTimings')
                plots = page.evaluate("""() => Object.fromEntries([...document.querySelectorAll('[data-plot]')]
                    .map((e) => [e.dataset.plot, [Number(e.dataset.points), Number(e.dataset.drawMs)]]))""")
                # Warm: from the list to the experiment in the same tab, with the renderer's
                # main-thread CPU time, which other load on the machine does not inflate.
                page.goto(f'{url}/#/')
                page.wait_for_selector('body[data-ready="experiments"]', state='attached', timeout=120000)
                cdp = context.new_cdp_session(page)
                cdp.send('Performance.enable')
                before = {m['name']: m['value'] for m in cdp.send('Performance.getMetrics')['metrics']}
                page.evaluate(f"() => {{ location.hash = '#/e/{quote(name, safe='')}'; }}")
                page.wait_for_selector('body[data-ready="experiment"]', state='attached', timeout=120000)
                after = {m['name']: m['value'] for m in cdp.send('Performance.getMetrics')['metrics']}
                timings['warmRoute'] = page.evaluate('() => window.tuneflowTimings.experimentRoute')
                timings['warmCpu'] = (after['ThreadTime'] - before['ThreadTime']) * 1000
                rows.append(timings)
                print(json.dumps({'run': run, 'routeToReady': round(timings['experimentRoute']), 'navigationToReady': round(timings['experiment']),
                                  'load': round(timings['dataLoaded']), 'draw': round(timings['drawn']),
                                  'warmRouteToReady': round(timings['warmRoute']), 'warmMainThreadCpu': round(timings['warmCpu']),
                                  'plots': {k: {'points': v[0], 'ms': v[1]} for k, v in plots.items()}}))
                context.close()
            browser.close()
        for key in ['experimentRoute', 'experiment', 'dataLoaded', 'drawn', 'warmRoute', 'warmCpu']:
            values = [r[key] for r in rows]
            print(f'{key}: median {statistics.median(values):.0f} ms, min {min(values):.0f}, max {max(values):.0f}')
    finally:
        if server:
            server.stop()


if __name__ == '__main__':
    main()
