"""GUI-thread CPU time of the training dashboard, fed synthetic events at the digits preset's rate (no training).

Separates the dashboard's own drawing cost from training: the Train panel in a 1400x900 window receives StepMetrics
every 10 steps at 35 steps/s, and at each epoch (22 steps) an EpochSummary, a Preview of 80 samples and a log line;
it redraws every 33 ms as its timer would: one waiting plot a tick (the app's way) and, for comparison, every plot a
tick (before 2026-12-05). Prints the GUI thread's CPU time as a share of one core for each.
(First stop: 13.1%; after caching the image grid's layout and the plots' axes and re-ranging in steps: 4.0%.)

Run: `QT_QPA_PLATFORM=offscreen .venv/bin/python bench/bench_dashboard_cpu.py [simulated seconds]`.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 20.0
    for mode in ("every plot a tick", "one plot a tick", "every plot a tick", "one plot a tick"):
        run(seconds, mode)


def run(seconds: float, mode: str) -> None:
    import numpy as np
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([])
    import explorer.main_window as mw
    from core.training.events import EpochSummary, Preview, RunStarted, StepMetrics
    from explorer.state import AppState

    mw.PANELS = mw.PANELS[:1]     # the dashboard alone
    win = mw.MainWindow(AppState(), defer_panels=True)
    win.resize(1400, 900)
    win.show()
    panel = win.train_panel
    for _ in range(20):
        app.processEvents()
    rng = np.random.default_rng(0)
    panel.handle_event(RunStarted(None, {"train": {"epochs": 1000}}, {"class_names": [str(i) for i in range(10)]},
                                  "cpu", 22000, 22))
    steps_per_s, log_every, steps_per_epoch = 35, 10, 22
    step, epoch = 0, 1
    sim_t = next_redraw = next_event = 0.0
    cpu0 = time.thread_time()
    while sim_t < seconds:
        if sim_t >= next_event:
            step += log_every
            loss = 120 * np.exp(-step / 3000) + 40 + rng.normal(0, 3)
            panel.handle_event(StepMetrics(step, epoch, {"loss": loss, "recon": loss - 15, "kl": 15 + rng.normal()},
                                           2e-3, 2200, 100, step / 22000))
            if step % steps_per_epoch < log_every:
                epoch += 1
                panel.handle_event(EpochSummary(epoch, step, {"loss": loss}, {"loss": loss + 2}, False, 1.0,
                                                rng.random(16).astype(np.float32)))
                imgs = rng.integers(0, 255, (80, 16, 16, 1), dtype=np.uint8)
                val = rng.integers(0, 255, (8, 16, 16, 1), dtype=np.uint8)
                panel.handle_event(Preview(epoch, step, imgs, np.repeat(np.arange(10), 8), val, val))
                panel.dashboard.log(f"epoch {epoch}")
            next_event += log_every / steps_per_s
        if sim_t >= next_redraw:
            if mode == "one plot a tick":
                panel.dashboard._redraw_tick()
                panel.dashboard._redraw_timer.stop()    # this loop is the timer
            else:
                panel.dashboard.redraw()
            app.processEvents()       # paints what changed
            next_redraw += 0.033
        sim_t = min(next_event, next_redraw)
    cpu = time.thread_time() - cpu0
    print(f"{mode}: {seconds:.0f} s of digits-rate events ({step} steps, {epoch} epochs): GUI thread CPU {cpu:.2f} s = "
          f"{100 * cpu / seconds:.1f}% of one core")
    win.close()


if __name__ == "__main__":
    main()
