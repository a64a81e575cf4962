"""GUI responsiveness while training digits, offscreen: event-loop stalls, throughput vs headless, start-up latency.

Prints:
- process start -> main window shown (a fresh `python` running explorer.app.run), and whether umap/diffusers were
  imported by then (they must not be);
- BENCH_ROUNDS (3) rounds of: headless Trainer images/s on the digits preset with the CLI's default threads, then the
  same preset trained from the full window for DURATION_S with every plot live, while a 10 ms QTimer probes the
  event loop;
- gaps between the probe's ticks over all rounds (p50/p99/max; targets p99 <= 33 ms, max <= 100 ms), the medians of
  the throughputs (target: GUI >= 85% of headless), and Train pressed -> first loss point (target <= 2 s).
The probe's 100 wake-ups a second cost training some throughput of their own, so the GUI figure is a floor.

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
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
PROBE = os.environ.get("BENCH_PROBE", "1") != "0"    # BENCH_PROBE=0: no 10 ms probe, to see what it costs training
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


def headless_images_per_s(threads: int) -> float:
    """The CLI's training loop, on a thread of its own that ends with it: a fresh `vae-explorer train` process has
    no other torch thread team alive, and neither may this measurement (see explorer.worker)."""
    import threading

    box: dict[str, float] = {}
    t = threading.Thread(target=lambda: box.setdefault("rate", _headless(threads)))
    t.start()
    t.join()
    return box["rate"]


def _headless(threads: int) -> float:
    import tempfile

    from core.training.events import StepMetrics
    from core.training.trainer import Trainer

    with tempfile.TemporaryDirectory() as tmp:   # a run folder, as `vae-explorer train` (and the GUI) write
        trainer = Trainer(bench_config(), threads=threads, run_dir=Path(tmp) / "run")
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


def open_window():
    """The main window as a user first sees it, with start-up loading over (dataset, bundled models, panels)."""
    from PySide6.QtWidgets import QApplication

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
    while win._workers or win._deferred:
        app.processEvents()
        time.sleep(0.005)
    win.tabs.setCurrentWidget(win.train_panel)
    return app, win


def gui_phase(app, win, seconds: float) -> tuple[list[float], float, float | None]:
    """Press Train on the dashboard, train for `seconds` with a 10 ms probe timer running, press Stop.
    Returns (gaps between probe ticks in ms, images/s, seconds from Train to the first loss point)."""
    from PySide6.QtCore import QElapsedTimer, QEventLoop, QTimer

    from core.training.events import StepMetrics

    panel = win.train_panel
    panel.set_config(bench_config())
    clock = QElapsedTimer()
    gaps: list[float] = []
    last = [0]
    ticker = QTimer()
    ticker.setInterval(10)
    ticker.setTimerType(ticker.timerType().PreciseTimer)

    def tick() -> None:
        now = clock.nsecsElapsed()
        gaps.append((now - last[0]) / 1e6)
        last[0] = now

    ticker.timeout.connect(tick)
    if not PROBE:
        ticker.setInterval(3_600_000)
    points: list[tuple[float, int]] = []
    loop = QEventLoop()

    def on_event(ev) -> None:
        if isinstance(ev, StepMetrics):
            points.append((time.perf_counter(), ev.step))

    def finish() -> None:
        ticker.stop()
        panel.stop()

    app.processEvents()
    pressed = time.perf_counter()
    assert panel.start_training(), panel.error_label.text()
    panel.worker.event.connect(on_event)
    panel.runFinished.connect(loop.quit)
    clock.start()
    ticker.start()
    QTimer.singleShot(int(seconds * 1000), finish)
    loop.exec()   # a real event loop, as in the application
    panel.runFinished.disconnect(loop.quit)
    # The first StepMetrics reaches the GUI thread (and the dashboard's loss plot) when on_event sees it.
    first = (points[0][0] - pressed) if points else None
    return gaps[1:], _rate(points, bench_config().train.batch_size), first


def main() -> None:
    import numpy as np
    import torch

    cli_threads = torch.get_num_threads()   # what `vae-explorer train` uses: torch's default in a fresh process
    startup_time()
    if TRAIN_ONLY:
        print("BENCH_TRAIN_ONLY=1: the window has the Train panel only")
    app, win = open_window()
    # Rounds alternate headless and GUI training in this process, so that drifts in the machine's speed (a shared
    # VM: the same headless run varies by +-10% from minute to minute) hit both sides alike.
    heads, guis, firsts, gaps = [], [], [], []
    for r in range(ROUNDS):
        heads.append(headless_images_per_s(cli_threads))
        g, rate, first = gui_phase(app, win, DURATION_S)
        guis.append(rate)
        firsts.append(first if first is not None else float("nan"))
        gaps += g
        print(f"round {r + 1}: headless ({cli_threads} threads) {heads[-1]:,.0f} img/s, GUI {rate:,.0f} img/s "
              f"({100 * rate / heads[-1]:.0f}%)", flush=True)
    win.close()   # stops and joins every worker (panels' too)
    g = np.asarray(gaps if PROBE else [float("nan")])
    print(f"event loop ({len(g)} ticks of a 10 ms timer over {ROUNDS} x {DURATION_S:.0f} s of training, all plots "
          f"live): p50 {np.percentile(g, 50):.1f} ms, p99 {np.percentile(g, 99):.1f} ms, max {g.max():.1f} ms "
          f"(targets p99 <= 33, max <= 100)")
    head, gui = float(np.median(heads)), float(np.median(guis))
    paired = float(np.median(np.asarray(guis) / np.asarray(heads)))
    print(f"training throughput: GUI / headless per round, median {100 * paired:.0f}% (target >= 85%); medians "
          f"GUI {gui:,.0f} img/s, headless ({cli_threads} threads, as the CLI) {head:,.0f} img/s")
    print(f"Train pressed -> first loss point: median {np.nanmedian(firsts):.2f} s, worst {np.nanmax(firsts):.2f} s "
          f"(target <= 2 s)")
    print(f"cores: {os.cpu_count()}; load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
