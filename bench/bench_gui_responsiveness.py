"""GUI responsiveness while training digits, offscreen: event-loop stalls, throughput vs headless, start-up latency.

Prints:
- process start -> main window shown (a fresh `python` running explorer.app.run), and whether umap/diffusers were
  imported by then (they must not be);
- headless Trainer images/s on the digits preset (same threads as the GUI gives training, and the CLI default);
- with the full window open and every plot live for DURATION_S: gaps between ticks of a 10 ms QTimer (p50/p99/max;
  targets p99 <= 33 ms, max <= 100 ms), training images/s (target >= 85% of headless), and Train pressed -> first
  loss point.

Run: `QT_QPA_PLATFORM=offscreen .venv/bin/python bench/bench_gui_responsiveness.py [seconds]`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DURATION_S = float(sys.argv[1]) if len(sys.argv) > 1 else 30.0
HEADLESS_S = min(20.0, DURATION_S)
TRAIN_ONLY = os.environ.get("BENCH_TRAIN_ONLY") == "1"

_STARTUP_CHILD = r"""
import sys, time
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication
from explorer.main_window import MainWindow

_exec = QApplication.exec

def exec_(self=None):
    def shown():
        wins = [w for w in QApplication.topLevelWidgets() if isinstance(w, MainWindow) and w.isVisible()]
        heavy = [m for m in ("umap", "diffusers", "numba") if m in sys.modules]
        print(f"SHOWN {time.time():.6f} {len(wins)} heavy={','.join(heavy) or 'none'}", flush=True)
        for w in wins:
            w.close()      # joins the start-up loader
        QApplication.instance().quit()
    QTimer.singleShot(0, shown)
    return _exec()

QApplication.exec = exec_
from explorer.app import run
sys.exit(run([]))
"""


def startup_time() -> None:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    t0 = time.time()
    proc = subprocess.run([sys.executable, "-c", _STARTUP_CHILD], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("SHOWN")), None)
    if line is None:
        print(f"start-up: the window did not show (rc {proc.returncode}): {proc.stderr.strip()[-500:]}")
        return
    _, t_shown, n, heavy = line.split()
    print(f"start-up: process start -> window shown {float(t_shown) - t0:.2f} s (target <= 3 s); "
          f"{heavy} imported by then")


def bench_config():
    from core.config import preset, with_overrides

    cfg = preset("digits")
    return cfg.replace(train=with_overrides(cfg.train, epochs=100_000, preview_every=1))


def headless_images_per_s(threads: int | None) -> float:
    from core.events import StepMetrics
    from core.train import Trainer

    trainer = Trainer(bench_config(), threads=threads)
    points: list[tuple[float, int]] = []
    t_end = None
    for ev in trainer.run():
        if isinstance(ev, StepMetrics):
            points.append((time.perf_counter(), ev.step))
            if t_end is None:
                t_end = time.perf_counter() + HEADLESS_S
            elif time.perf_counter() >= t_end:
                trainer.stop()
    return _rate(points, bench_config().train.batch_size)


def _rate(points: list[tuple[float, int]], batch: int) -> float:
    points = points[len(points) // 10:]    # skip the warm-up
    if len(points) < 2:
        return float("nan")
    (t0, s0), (t1, s1) = points[0], points[-1]
    return (s1 - s0) * batch / max(1e-9, t1 - t0)


def gui_run() -> tuple[list[float], float, float | None]:
    import numpy as np
    from PySide6.QtCore import QElapsedTimer, QEventLoop, QTimer
    from PySide6.QtWidgets import QApplication

    from core.events import StepMetrics
    from explorer.main_window import MainWindow
    from explorer.state import AppState

    app = QApplication.instance() or QApplication([])
    if TRAIN_ONLY:   # isolate the dashboard from the other panels' reactions to each new snapshot
        import explorer.main_window as mw

        mw.PANELS = mw.PANELS[:1]
    win = MainWindow(AppState(), defer_panels=True)
    win.resize(1400, 900)
    win.show()
    win.load_initial(None)
    # Press Train once start-up loading is over (dataset, bundled models, deferred panels), as a user would.
    while win._workers or win._deferred:
        app.processEvents()
        time.sleep(0.005)
    panel = win.train_panel
    win.tabs.setCurrentWidget(panel)
    panel.set_config(bench_config())

    clock = QElapsedTimer()
    gaps: list[float] = []
    at: list[float] = []     # seconds after Train was pressed, for each gap
    last = [0]
    ticker = QTimer()
    ticker.setInterval(10)
    ticker.setTimerType(ticker.timerType().PreciseTimer)

    def tick() -> None:
        now = clock.nsecsElapsed()
        gaps.append((now - last[0]) / 1e6)
        at.append(now / 1e9)
        last[0] = now

    ticker.timeout.connect(tick)
    points: list[tuple[float, int]] = []
    loop = QEventLoop()

    def on_event(ev) -> None:
        if isinstance(ev, StepMetrics):
            points.append((time.perf_counter(), ev.step))

    def finish() -> None:
        ticker.stop()
        panel.stop()

    app.processEvents()
    assert panel.start_training(), panel.error_label.text()
    panel.worker.event.connect(on_event)
    panel.runFinished.connect(lambda _s: loop.quit())
    clock.start()
    ticker.start()
    QTimer.singleShot(int(DURATION_S * 1000), finish)
    loop.exec()   # a real event loop, as in the application
    first = (panel.first_point_at - panel.train_pressed_at) if panel.first_point_at else None
    win.close()   # stops and joins every worker (panels' too)
    rate = _rate(points, bench_config().train.batch_size)
    worst = int(np.argmax(gaps[1:])) + 1 if len(gaps) > 1 else 0
    print(f"(longest stall ends {at[worst]:.2f} s after Train was pressed; first loss point at "
          f"{first if first is not None else float('nan'):.2f} s)")
    return list(np.asarray(gaps[1:])), rate, first


def main() -> None:
    import numpy as np

    from explorer.panels.train import gui_threads

    startup_time()
    if TRAIN_ONLY:
        print("BENCH_TRAIN_ONLY=1: the window has the Train panel only")
    threads = gui_threads()
    gaps, gui_rate, first = gui_run()
    head_same = headless_images_per_s(threads)
    head_default = headless_images_per_s(None)
    g = np.asarray(gaps)
    print(f"event loop ({len(g)} ticks of a 10 ms timer over {DURATION_S:.0f} s of training, all plots live): "
          f"p50 {np.percentile(g, 50):.1f} ms, p99 {np.percentile(g, 99):.1f} ms, max {g.max():.1f} ms "
          f"(targets p99 <= 33, max <= 100)")
    print(f"training throughput: GUI {gui_rate:,.0f} img/s with {threads} thread(s); headless same threads "
          f"{head_same:,.0f} img/s ({100 * gui_rate / head_same:.0f}%); headless CLI default threads "
          f"{head_default:,.0f} img/s ({100 * gui_rate / head_default:.0f}%) (target >= 85%)")
    print(f"Train pressed -> first loss point: {first:.2f} s (target <= 2 s)" if first is not None else
          "Train pressed -> first loss point: none")
    print(f"cores: {os.cpu_count()}; load average {os.getloadavg()[0]:.1f} (numbers are noisy on a shared machine)")


if __name__ == "__main__":
    main()
