#!/usr/bin/env python3
"""Times one dashboard from navigation to every plot drawn, in headless Chromium, over the
experiment that seed.py put in DATA/SIZE/.

Targets (--target):
  tuneflow         `tuneflow dashboard --store sqlite://DATA/SIZE/tuneflow.db --addr
                   127.0.0.1:PORT` (read-only), page http://127.0.0.1:PORT/#/e/dash-SIZE.
                   Drawn = `document.body.dataset.ready === "experiment"` (the page sets it
                   when every plot of the experiment page has been rendered, see
                   docs/dashboard.md), seen by a MutationObserver installed before the page's
                   scripts run, which stamps performance.now() at that mutation.
  optuna-top       `optuna-dashboard sqlite:///DATA/SIZE/optuna.db --host 127.0.0.1 --port
                   PORT`, page /dashboard/studies/1 (the study's top page). Drawn = all four of
                   its plotly plots hold rendered marks: #plot-history a scatter point,
                   #graph-hyperparameter-importances a bar, #graph-intermediate-values a line
                   trace, #graph-timeline a bar. Checked every 50 ms by a setInterval installed
                   before the page's scripts; the first check that sees all four stamps
                   performance.now(). Then the marks must still be there 1 s later.
  optuna-selection the same server, page /dashboard/studies/1/smartSelection ("Trial
                   Selection", where optuna-dashboard 0.21 draws its parallel coordinate
                   plot). Drawn = #plot-parallel-coordinate holds a .parcoords element and
                   #plot-history a scatter point, checked as above.

Each repetition starts a fresh server (its CPU and memory are measured from the navigation
only), waits until it answers, opens a fresh browser context (empty cache), navigates and
waits for "drawn" (or --timeout). Per repetition it records:
  inPageMs    performance.now() at drawn (the page's clock starts at navigation start)
  wallMs      (performance.timeOrigin + inPageMs) - epoch ms just before page.goto
  bytes       CDP Network events: decodedBytes = sum of dataReceived.dataLength (body bytes
              after decompression), wireBytes = sum of loadingFinished.encodedDataLength
              (bytes on the wire, headers included); bodyBytes = sum of len(response.body())
              (Playwright) for the first repetition
  serverCpuS  user + system CPU of the server process (and its children) from just before
              page.goto to drawn (psutil)
  serverPeakRssMiB  largest RSS of the server (and children) sampled every 50 ms over the
              same interval; serverIdleRssMiB just before navigation
  browserCpuS CPU of all Chromium processes over the same interval
  plots       what was drawn (counts of marks per plot, or the page's data-points)

Usage: measure.py --target T --size N --data DIR --out FILE --tuneflow BIN --optuna-dashboard
                  BIN [--repeats 5] [--budget 0] [--timeout 300] [--screenshot FILE]
--budget S stops repeating (after at least one repetition) once the repetitions of this
target and size have taken S seconds: the slow peer at large sizes gets fewer repetitions.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import psutil
from playwright.sync_api import sync_playwright

import data

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
VIEWPORT = {"width": 1400, "height": 1000}


def log(msg: str) -> None:
    print(f"[measure] {msg}", file=sys.stderr, flush=True)


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# --- what "drawn" means, per target (installed with add_init_script: runs before the page) ------

TUNEFLOW_INIT = """
(() => {
  const bench = window.__bench = {drawnAt: null};
  const seen = () => {
    if (bench.drawnAt === null && document.body && document.body.dataset.ready === 'experiment') {
      bench.drawnAt = performance.now();
      console.debug('__bench_drawn ' + bench.drawnAt);
    }
  };
  new MutationObserver(seen).observe(document, {attributes: true, subtree: true,
                                                attributeFilter: ['data-ready']});
})();
"""

# [element id, selector that exists once the plot holds rendered marks]
OPTUNA_PLOTS = {
    "optuna-top": [["plot-history", ".scatterlayer .point"],
                   ["graph-hyperparameter-importances", ".bars .point"],
                   ["graph-intermediate-values", ".scatterlayer .trace .js-line"],
                   ["graph-timeline", ".bars .point"]],
    "optuna-selection": [["plot-parallel-coordinate", ".parcoords"],
                         ["plot-history", ".scatterlayer .point"]],
}

OPTUNA_INIT = """
(() => {
  const want = %s;
  const bench = window.__bench = {drawnAt: null};
  const all = () => want.every(([id, sel]) => {
    const el = document.getElementById(id);
    return el !== null && el.querySelector(sel) !== null;
  });
  bench.check = all;
  const timer = setInterval(() => {
    if (bench.drawnAt === null && all()) {
      bench.drawnAt = performance.now();
      clearInterval(timer);
      console.debug('__bench_drawn ' + bench.drawnAt);
    }
  }, 50);
})();
"""

# Counted once, after drawn (querySelectorAll over 10^5 nodes is too slow to poll).
OPTUNA_COUNT = """
(want) => Object.fromEntries(want.map(([id]) => {
  const el = document.getElementById(id);
  if (!el) return [id, null];
  const n = (s) => el.querySelectorAll(s).length;
  return [id, {scatterTraces: n('.scatterlayer .trace'), points: n('.scatterlayer .point'),
               lines: n('.scatterlayer .js-line'), bars: n('.bars .point'),
               parcoords: n('.parcoords')}];
}))
"""

TUNEFLOW_COUNT = """
() => ({plots: Array.from(document.querySelectorAll('[data-plot]')).map(e => ({
          plot: e.dataset.plot, points: e.dataset.points === undefined ? null : Number(e.dataset.points),
          drawMs: e.dataset.drawMs === undefined ? null : Number(e.dataset.drawMs)})),
        timings: window.tuneflowTimings || null})
"""


# --- servers ------------------------------------------------------------------------------------

class Server:
    def __init__(self, argv: list[str], probe_url: str, logfile: Path, timeout: float = 120):
        self.logfile = open(logfile, "ab")
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self.logfile,
                                     stderr=self.logfile, start_new_session=True)
        self.ps = psutil.Process(self.proc.pid)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{argv[0]} exited with {self.proc.returncode} "
                                   f"(log: {logfile})")
            try:
                with urllib.request.urlopen(probe_url, timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"no answer from {probe_url} after {timeout} s")
            time.sleep(0.1)

    def processes(self) -> list[psutil.Process]:
        try:
            return [self.ps] + self.ps.children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    def cpu(self) -> float:
        total = 0.0
        for p in self.processes():
            try:
                t = p.cpu_times()
                total += t.user + t.system
            except psutil.NoSuchProcess:
                pass
        return total

    def rss(self) -> int:
        total = 0
        for p in self.processes():
            try:
                total += p.memory_info().rss
            except psutil.NoSuchProcess:
                pass
        return total

    def stop(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.logfile.close()


def start_server(target: str, size: int, data_dir: Path, args, logfile: Path):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    if target == "tuneflow":
        db = (data_dir / str(size) / "tuneflow.db").resolve()
        server = Server([args.tuneflow, "dashboard", "--store", f"sqlite://{db}",
                         "--addr", f"127.0.0.1:{port}"], f"{base}/api/v1/info", logfile)
        return server, f"{base}/#/e/{data.experiment_name(size)}"
    db = (data_dir / str(size) / "optuna.db").resolve()
    server = Server([args.optuna_dashboard, f"sqlite:///{db}", "--host", "127.0.0.1",
                     "--port", str(port)], f"{base}/api/meta", logfile)
    page = "" if target == "optuna-top" else "/smartSelection"
    return server, f"{base}/dashboard/studies/1{page}"


class Sampler(threading.Thread):
    """Largest server RSS every 50 ms until stopped."""

    def __init__(self, server: Server):
        super().__init__(daemon=True)
        self.server, self.peak, self.halt = server, 0, threading.Event()

    def run(self):
        while not self.halt.is_set():
            self.peak = max(self.peak, self.server.rss())
            self.halt.wait(0.05)

    def stop(self) -> int:
        self.halt.set()
        self.join()
        self.peak = max(self.peak, self.server.rss())
        return self.peak


def chromium_cpu() -> float:
    total = 0.0
    for p in psutil.Process().children(recursive=True):
        try:
            if "chrom" in p.name():
                t = p.cpu_times()
                total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


# --- one repetition ------------------------------------------------------------------------------

def one_load(browser, target: str, url: str, server: Server, timeout: float, bodies: bool,
             screenshot: Path | None) -> dict:
    ctx = browser.new_context(viewport=VIEWPORT)
    if target == "tuneflow":
        ctx.add_init_script(TUNEFLOW_INIT)
    else:
        ctx.add_init_script(OPTUNA_INIT % json.dumps(OPTUNA_PLOTS[target]))
    page = ctx.new_page()
    cdp = ctx.new_cdp_session(page)
    cdp.send("Network.enable")
    net = {"decoded": 0, "wire": 0, "finished": 0, "urls": {}, "failed": 0, "timing": {}}
    urls, sent = {}, {}

    def short(url: str) -> str:
        return url.split("?")[0].split("#")[0]

    def on_request(ev):
        sent[ev["requestId"]] = ev["timestamp"]

    def on_response(ev):
        urls[ev["requestId"]] = ev["response"]["url"]

    def on_data(ev):
        net["decoded"] += ev.get("dataLength", 0)

    def on_finished(ev):
        net["wire"] += ev.get("encodedDataLength", 0)
        net["finished"] += 1
        u = short(urls.get(ev["requestId"], "?"))
        net["urls"][u] = net["urls"].get(u, 0) + ev.get("encodedDataLength", 0)
        start = sent.get(ev["requestId"])
        if start is not None and "/api/" in u and u not in net["timing"]:
            # request sent -> last byte received, ms (CDP monotonic timestamps)
            net["timing"][u] = round((ev["timestamp"] - start) * 1000, 1)

    def on_failed(ev):
        net["failed"] += 1

    cdp.on("Network.requestWillBeSent", on_request)
    cdp.on("Network.responseReceived", on_response)
    cdp.on("Network.dataReceived", on_data)
    cdp.on("Network.loadingFinished", on_finished)
    cdp.on("Network.loadingFailed", on_failed)
    responses = []
    page.on("response", lambda r: responses.append(r))

    idle_rss = server.rss()
    sampler = Sampler(server)
    sampler.start()
    cpu0, bcpu0 = server.cpu(), chromium_cpu()
    # The page says when it is drawn with a console message: nothing here waits on the page's
    # main thread (page.evaluate would, and a page busy for minutes would hold the timeout).
    seen = {}

    def on_console(msg):
        if msg.text.startswith("__bench_drawn "):
            seen["at"] = float(msg.text.split()[1])

    page.on("console", on_console)
    t0 = time.time()
    page.goto(url, wait_until="commit", timeout=timeout * 1000)
    deadline = time.monotonic() + timeout
    while "at" not in seen and time.monotonic() < deadline:
        page.wait_for_timeout(50)
    drawn = seen.get("at")
    cpu1, bcpu1 = server.cpu(), chromium_cpu()
    peak = sampler.stop()
    snapshot = {k: (dict(v) if isinstance(v, dict) else v) for k, v in net.items()}
    result = {"drawn": drawn is not None, "idleRssMiB": round(idle_rss / 2**20, 1),
              "serverCpuS": round(cpu1 - cpu0, 3), "serverPeakRssMiB": round(peak / 2**20, 1),
              "browserCpuS": round(bcpu1 - bcpu0, 3),
              "decodedBytes": snapshot["decoded"], "wireBytes": snapshot["wire"],
              "requests": snapshot["finished"], "failedRequests": snapshot["failed"],
              "wireBytesByUrl": snapshot["urls"], "apiRequestMs": snapshot["timing"]}
    if drawn is None:
        result["timeoutS"] = timeout
        log(f"{target}: not drawn within {timeout} s")
    else:
        origin = page.evaluate("performance.timeOrigin")
        result["inPageMs"] = round(drawn, 1)
        result["wallMs"] = round(origin + drawn - t0 * 1000, 1)
        if target == "tuneflow":
            result["plots"] = page.evaluate(TUNEFLOW_COUNT)
        else:
            time.sleep(1.0)
            if not page.evaluate("window.__bench.check()"):
                result["drawn"] = False
                result["unstable"] = True
                log(f"{target}: plots gone 1 s after they were drawn")
            result["plots"] = page.evaluate(OPTUNA_COUNT, OPTUNA_PLOTS[target])
    if bodies and result["drawn"]:
        total = 0
        for r in responses:
            try:
                total += len(r.body())
            except Exception:
                pass
        result["bodyBytes"] = total
    # A full-page screenshot of a page with 10^5 SVG nodes takes minutes: only fast pages.
    if screenshot is not None and result.get("drawn") and result["wallMs"] < 20000:
        try:
            page.screenshot(path=str(screenshot), full_page=True, timeout=60000)
        except Exception as e:
            log(f"screenshot failed: {e.__class__.__name__}")
    ctx.close()
    return result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--target", required=True, choices=["tuneflow", "optuna-top",
                                                        "optuna-selection"])
    ap.add_argument("--size", type=int, required=True)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--tuneflow", default="tuneflow")
    ap.add_argument("--optuna-dashboard", default="optuna-dashboard")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--budget", type=float, default=0.0)
    ap.add_argument("--timeout", type=float, default=300.0)
    ap.add_argument("--screenshot", type=Path)
    args = ap.parse_args()

    reps = []
    load_before = os.getloadavg()[0]
    logfile = args.out.with_suffix(".server.log")
    started = time.monotonic()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        for i in range(args.repeats):
            server, url = start_server(args.target, args.size, args.data, args, logfile)
            try:
                r = one_load(browser, args.target, url, server, args.timeout, bodies=(i == 0),
                             screenshot=args.screenshot if i == 0 else None)
            finally:
                server.stop()
            r["repetition"] = i + 1
            reps.append(r)
            shown = f"{r['wallMs'] / 1000:.3f} s" if r["drawn"] else "NOT DRAWN"
            log(f"{args.target} {args.size}: rep {i + 1}: {shown}, server CPU "
                f"{r['serverCpuS']} s, peak RSS {r['serverPeakRssMiB']} MiB, "
                f"{r['wireBytes']} B on the wire")
            if not r["drawn"]:
                break  # a timeout will not get better: do not spend the budget again
            if args.budget and time.monotonic() - started > args.budget:
                break
        version = browser.version
        browser.close()
    ok = [r for r in reps if r["drawn"]]
    summary = {"target": args.target, "size": args.size, "repetitions": len(reps),
               "drawn": len(ok), "chromium": version, "reps": reps,
               # The machine is shared: the 1-minute load average around this target's loads.
               "loadavg": [round(load_before, 2), round(os.getloadavg()[0], 2)]}
    if ok:
        for key in ("wallMs", "inPageMs", "serverCpuS", "serverPeakRssMiB", "browserCpuS"):
            vals = [r[key] for r in ok]
            summary[key] = {"median": statistics.median(vals), "min": min(vals),
                            "max": max(vals)}
    args.out.write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
