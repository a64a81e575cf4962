"""Resident memory at launch: the main window as `vae-explorer` opens it, once start-up's loading is over.

Each reading is a fresh `python` (what a user launching the app gets): the window is built as `explorer.app.run`
builds it (deferred panels, `load_initial` on a worker), shown at 1280x820 on the Train tab, and the RSS
(`explorer.widgets.status_bar.process_memory_mb`, the status bar's figure) is read once every panel is built and the
bundled dataset and models are in, after a 2 s settle. Then each tab named by `--visit` is shown in turn and the RSS
read again once the panel's work is done (e.g. `--visit sampler` shows what the Sampler's diffusion model costs).

Prints per run: RSS at launch, which heavy libraries start-up imported (diffusers must not be among them: its import
is ~300 MiB), the models in the list (and whether each is loaded), then the RSS after each visit; the median of the
launch RSS over `--runs` runs and the target (<= 1 GiB, issue 23).

Run: `.venv/bin/python bench/bench_launch_memory.py [--runs 3] [--visit sampler restore]` (offscreen by default).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_MIB = 1024
HEAVY = ("diffusers", "umap", "numba", "sklearn", "scipy", "skimage", "torchvision", "sympy", "triton", "pandas")

_CHILD = r"""
import json, os, sys, time
sys.path.insert(0, sys.argv[1])
from PySide6.QtCore import QCoreApplication, QSettings
from PySide6.QtWidgets import QApplication

QSettings.setDefaultFormat(QSettings.Format.IniFormat)
QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, sys.argv[2])   # a fresh user's settings
QCoreApplication.setOrganizationName("vae-explorer")
QCoreApplication.setApplicationName("vae-explorer-bench")
app = QApplication([])
from explorer.main_window import MainWindow
from explorer.state import AppState
from explorer.widgets.status_bar import process_memory_mb

def wait(done, timeout):
    end = time.monotonic() + timeout
    while not done() and time.monotonic() < end:
        app.processEvents()
        time.sleep(0.01)
    return done()

def settle(seconds):
    wait(lambda: False, seconds)

def busy(panel):
    tasks = getattr(panel, "tasks", None)
    return bool(tasks is not None and tasks.busy()) or bool(getattr(panel, "is_sampling", lambda: False)())

win = MainWindow(AppState(), defer_panels=True)
win.resize(1280, 820)
win.show()
t0 = time.monotonic()
win.load_initial(None)
wait(lambda: not win._workers and not win._deferred, 600)
settle(2.0)
out = {"launch_s": time.monotonic() - t0, "rss": process_memory_mb(),
       "heavy": sorted(m for m in json.loads(sys.argv[3]) if m in sys.modules),
       "models": [f"{e.name} ({e.kind})" for e in win.state.models], "visits": []}
for key in json.loads(sys.argv[4]):
    panel = win.panels[key]
    win.tabs.setCurrentWidget(panel)
    settle(0.3)
    wait(lambda: not busy(panel) and not win._workers, 300)
    settle(1.0)
    out["visits"].append({"tab": key, "rss": process_memory_mb(),
                          "models": [f"{e.name} ({e.kind})" for e in win.state.models],
                          "diffusers": "diffusers" in sys.modules})
print("RESULT " + json.dumps(out), flush=True)
win._closing = True
win.close()
"""


def one_run(visit: list[str]) -> dict:
    with tempfile.TemporaryDirectory(prefix="vae-launch-mem-") as settings:
        env = {**os.environ, "QT_QPA_PLATFORM": os.environ.get("QT_QPA_PLATFORM", "offscreen")}
        done = subprocess.run([sys.executable, "-c", _CHILD, str(ROOT), settings, json.dumps(HEAVY),
                               json.dumps(visit)], capture_output=True, text=True, env=env, timeout=900)
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if line is None:
        raise SystemExit(f"the launch did not finish (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(line[len("RESULT "):])


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=3, help="fresh launches to take the median of (default 3)")
    p.add_argument("--visit", nargs="*", default=[], help="panel keys to show after launch (e.g. sampler restore)")
    args = p.parse_args(argv)
    launches = []
    for i in range(args.runs):
        r = one_run(args.visit)
        launches.append(r["rss"])
        print(f"run {i + 1}: RSS at launch {r['rss']:.0f} MiB (loading {r['launch_s']:.1f} s); "
              f"heavy imports: {', '.join(r['heavy']) or 'none'}", flush=True)
        print(f"        models: {'; '.join(r['models']) or 'none'}")
        for v in r["visits"]:
            print(f"        after showing {v['tab']}: RSS {v['rss']:.0f} MiB; diffusers imported: {v['diffusers']}; "
                  f"models: {'; '.join(v['models'])}", flush=True)
    median = statistics.median(launches)
    print(f"RSS at launch, median of {len(launches)}: {median:.0f} MiB ({median / 1024:.2f} GiB); "
          f"target <= {TARGET_MIB} MiB: {'met' if median <= TARGET_MIB else 'NOT met'}")


if __name__ == "__main__":
    main()
