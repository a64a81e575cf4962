"""Memory soak: train from the GUI (offscreen) for a long time and print the process's resident memory over time.

The full main window is built as the app builds it (every panel, the bundled dataset and models loaded), the digits
preset is set on the Train panel with epochs raised so that the run outlasts the soak and a preview every epoch, and
Train is pressed: the dashboard draws every event, previews reach its image grids, checkpoints and preview PNGs are
written to a run folder (a temporary one, removed at the end), and model snapshots are rebuilt on the worker.

Snapshots reach AppState (and the Latent map / Sampler panels re-encode, re-project and re-sample) only while the
Train panel is hidden, as in the app. So that they flow as in real use, the bench visits the Latent map and the
Sampler tabs for `--dwell` seconds each every `--visit-every` seconds, then returns to Train. Before Train is pressed
it visits both once and waits for their work (encode, projection, sampling grid) and computes one UMAP map, so that
one-time costs (importing umap, loading numba's compiled kernels) are paid before the baseline, as by a user who had
looked around first.

Resident memory (RSS, `explorer.widgets.status_bar.process_memory_mb`, as the status bar shows it) is read every
`--every` seconds on the GUI thread *without* a gc.collect() first (what the user sees); the table also counts the
Python objects the collector tracks (`len(gc.get_objects())`, which leaves garbage alone; start-up's objects are frozen
out of it by `gc.freeze()`) to tell a Python-level leak from native growth, and the `explorer.worker.Worker` objects
still alive (its weak registry): each finished worker that stays alive keeps its target and arguments (a model, a
split) alive too. The baseline is the RSS once the first epoch's events (summary, checkpoints, preview, snapshot)
have reached the panel and been drawn. The last reading is taken on the Train tab just before Stop.

Prints: one row per reading (elapsed, epoch, tab shown, RSS MiB, growth vs the first-epoch RSS, Python objects),
then RSS before training, after the first epoch and at the end, epochs trained, and the growth against the target
(< 5%).

Run: `nice -n 15 .venv/bin/python bench/bench_memory_soak.py [--minutes 30] [--every 30] [--visit-every 300]
[--dwell 20]` (QT_QPA_PLATFORM defaults to offscreen).
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TARGET_GROWTH = 0.05
FIRST_EPOCH_SETTLE_MS = 300     # after epoch 1's snapshot reached the panel: its redraw (REDRAW_MS 33) is done by then


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=30.0, help="how long to train (default 30)")
    p.add_argument("--every", type=float, default=30.0, help="seconds between RSS readings (default 30)")
    p.add_argument("--visit-every", type=float, default=300.0,
                   help="seconds between visits to the Latent map and Sampler tabs; 0 = stay on Train (default 300)")
    p.add_argument("--dwell", type=float, default=20.0, help="seconds spent on each visited tab (default 20)")
    return p.parse_args(argv)


def wait_until(app, done, timeout_s: float) -> bool:
    """Run the event loop until done() or the timeout; whether done() became true."""
    t_end = time.monotonic() + timeout_s
    while not done():
        if time.monotonic() > t_end:
            return False
        app.processEvents()
        time.sleep(0.01)
    return True


def open_window():
    """The main window as a user first sees it, with start-up loading over (dataset, bundled models, all panels)."""
    from PySide6.QtCore import QCoreApplication
    from PySide6.QtWidgets import QApplication

    from explorer.main_window import MainWindow
    from explorer.state import AppState

    QCoreApplication.setOrganizationName("vae-explorer")
    QCoreApplication.setApplicationName("vae-explorer-bench")   # the bench's window settings, not the user's
    app = QApplication.instance() or QApplication([])
    win = MainWindow(AppState(), defer_panels=True)
    win.resize(1400, 900)
    win.show()
    win.load_initial(None)
    if not wait_until(app, lambda: not win._workers and not win._deferred, 600):
        raise SystemExit("start-up loading did not finish within 10 minutes")
    return app, win


def panel_busy(win, name: str) -> bool:
    panel = win.panels.get(name)
    if panel is None:
        return False
    if hasattr(panel, "is_sampling"):
        return panel.is_sampling()
    tasks = getattr(panel, "tasks", None) or getattr(panel, "workers", None)   # PanelTasks (or an older WorkerGroup)
    return bool(tasks is not None and tasks.busy())


def warm_up(app, win) -> None:
    """Visit the Latent map and the Sampler once and let their work finish; compute one UMAP map on a thread.

    The map of the bundled model usually comes from the projection cache, so visiting the Latent map does not import
    umap; the first snapshot during training would (umap, numba and their compiled kernels: ~200 MiB, once per
    process). That one-time cost is paid here, as by a user who had looked at a UMAP map before training."""
    import threading

    import numpy as np

    from core.latent.projection import project

    t0 = time.monotonic()
    mu = np.random.default_rng(0).standard_normal((500, 24)).astype(np.float32)
    worker = threading.Thread(target=project, args=(mu, "umap"))
    worker.start()
    wait_until(app, lambda: not worker.is_alive(), 600)
    print(f"warm-up: one UMAP map of 500 points in {time.monotonic() - t0:.0f} s", flush=True)
    for name in ("latent_map", "sampler"):
        panel = win.panels.get(name)
        if panel is None:
            print(f"warm-up: no {name} panel (it failed to build?)")
            continue
        t0 = time.monotonic()
        win.tabs.setCurrentWidget(panel)
        wait_until(app, lambda: False, 0.2)    # let the show event start its work
        finished = wait_until(app, lambda n=name: not panel_busy(win, n), 300)
        print(f"warm-up: {name} {'done' if finished else 'still busy'} after {time.monotonic() - t0:.0f} s",
              flush=True)
    win.tabs.setCurrentWidget(win.train_panel)
    wait_until(app, lambda: False, 0.5)


def soak_config():
    from core.config import preset, with_overrides

    cfg = preset("digits")
    return cfg.replace(train=with_overrides(cfg.train, epochs=100_000, preview_every=1))


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    from PySide6.QtCore import QEventLoop, QTimer

    import core.training.run_folder as run_folder
    import explorer.worker as worker_module
    from core.training.events import EpochSummary
    from explorer.panels.train_job import SnapshotLoaded
    from explorer.widgets.status_bar import process_memory_mb

    tmp = tempfile.TemporaryDirectory(prefix="vae-soak-")
    run_folder.runs_dir = lambda: Path(tmp.name)   # the run folder new_run_dir names goes here, removed at the end

    t_start = time.monotonic()
    app, win = open_window()
    print(f"window ready in {time.monotonic() - t_start:.0f} s; RSS {process_memory_mb():.0f} MiB", flush=True)
    warm_up(app, win)
    rss_before = process_memory_mb()
    print(f"before Train (after warm-up): RSS {rss_before:.0f} MiB, {len(gc.get_objects()):,} Python objects",
          flush=True)

    panel = win.train_panel
    panel.set_config(soak_config())
    state = {"epoch": 0, "baseline": None, "t0": 0.0, "tab": "train", "snapshots": 0}
    rows: list[tuple[float, int, str, float]] = []
    loop = QEventLoop()
    tabs = {"train": win.train_panel, "latent map": win.panels.get("latent_map"), "sampler": win.panels.get("sampler")}

    def reading(tag: str = "") -> None:
        elapsed = time.monotonic() - state["t0"]
        rss = process_memory_mb()
        objs = len(gc.get_objects())
        workers = len(worker_module._LIVE)
        base = state["baseline"]
        growth = f"{100 * (rss - base) / base:+7.2f}%" if base else "      --"
        rows.append((elapsed, state["epoch"], state["tab"], rss))
        print(f"{elapsed / 60:8.2f} {state['epoch']:6d}  {state['tab']:<10s} {rss:9.1f} {growth:>9s} "
              f"{objs:>11,} {workers:>8d}  {tag}", flush=True)

    def set_baseline() -> None:
        state["baseline"] = process_memory_mb()
        reading("<- baseline: first epoch's events drawn")

    def on_event(ev) -> None:
        if isinstance(ev, EpochSummary):
            state["epoch"] = ev.epoch
        elif isinstance(ev, SnapshotLoaded):
            state["snapshots"] += 1
            if state["baseline"] is None:
                QTimer.singleShot(FIRST_EPOCH_SETTLE_MS, set_baseline)

    def show(name: str) -> None:
        if tabs.get(name) is not None:
            state["tab"] = name
            win.tabs.setCurrentWidget(tabs[name])

    def visit() -> None:
        # Latent map, then the Sampler, then back to Train; each tab shown for `dwell` seconds.
        show("latent map")
        QTimer.singleShot(int(args.dwell * 1000), lambda: show("sampler"))
        QTimer.singleShot(int(2 * args.dwell * 1000), lambda: show("train"))

    def finish() -> None:
        reader.stop()
        visitor.stop()
        show("train")
        wait_until(app, lambda: False, 0.5)
        state["final"] = process_memory_mb()
        reading("<- final (Train tab)")
        panel.stop()

    print(f"training digits (epochs {soak_config().train.epochs}, preview every epoch) for {args.minutes:g} min; "
          f"RSS read every {args.every:g} s without gc.collect(); "
          + (f"Latent map and Sampler visited for {args.dwell:g} s each every {args.visit_every:g} s"
             if args.visit_every > 0 else "Train tab shown throughout"), flush=True)
    print(f"{'minutes':>8s} {'epoch':>6s}  {'tab':<10s} {'RSS MiB':>9s} {'growth':>9s} {'py objects':>11s} "
          f"{'workers':>8s}")
    assert panel.start_training(), panel.error_label.text()
    state["t0"] = time.monotonic()
    panel.worker.event.connect(on_event)
    panel.runFinished.connect(loop.quit)
    reader = QTimer()
    reader.setInterval(int(args.every * 1000))
    reader.timeout.connect(reading)
    reader.start()
    visitor = QTimer()
    if args.visit_every > 0:
        visitor.setInterval(int(args.visit_every * 1000))
        visitor.timeout.connect(visit)
        visitor.start()
    QTimer.singleShot(int(args.minutes * 60_000), finish)
    loop.exec()   # a real event loop, as in the application
    minutes = (time.monotonic() - state["t0"]) / 60
    epochs, status = state["epoch"], panel.last_status
    win.close()   # stops and joins every worker (panels' too)
    tmp.cleanup()

    base, final = state["baseline"], state.get("final")
    print()
    print(f"trained {epochs} epochs in {minutes:.1f} min (run {status}); {state['snapshots']} snapshots rebuilt; "
          f"cores {os.cpu_count()}, load average {os.getloadavg()[0]:.1f}")
    if base is None or final is None:
        print("no baseline: the first epoch did not finish")
        return
    growth = (final - base) / base
    peak = max(r[3] for r in rows)
    print(f"RSS: before Train {rss_before:.0f} MiB, after the first epoch {base:.0f} MiB, peak {peak:.0f} MiB, "
          f"at the end {final:.0f} MiB (readings without gc.collect())")
    print(f"growth after the first epoch: {100 * growth:+.2f}% ({final - base:+.0f} MiB); target < 5%: "
          f"{'MET' if growth < TARGET_GROWTH else 'NOT MET'}")


if __name__ == "__main__":
    main()
